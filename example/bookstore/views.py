from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from bookstore.models import Author, Book


def index(request: HttpRequest) -> HttpResponse:
    """The live page, served by the same `dddp` port as DDP: its list comes from its DDP client."""
    return render(
        request, "bookstore/index.html", {"authors": Author.objects.count(), "books": Book.objects.count()}
    )
