from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from bookstore.models import Author, Book


def index(request: HttpRequest) -> HttpResponse:
    """A page served by the same `dddp` port as DDP itself."""
    return render(
        request, "bookstore/index.html", {"authors": Author.objects.count(), "books": Book.objects.count()}
    )
