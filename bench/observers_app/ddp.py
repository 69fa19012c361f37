"""What the observers benchmark publishes: books by their author's id (a column of the
book's own) and by their author's email (a join), one observer per parameter."""

from dddp.api import API, Collection, Publication
from observers_app import models


class Author(Collection):
    model = models.Author


class Book(Collection):
    model = models.Book


class BooksByAuthor(Publication):
    def get_queries(self, author_id):
        return [models.Book.objects.filter(author_id=author_id)]


class BooksByAuthorEmail(Publication):
    """As the brief's: the author, and their books through a join."""

    def get_queries(self, author_email):
        return [
            models.Author.objects.filter(email=author_email),
            models.Book.objects.filter(author__email=author_email),
        ]


API.register([Author, Book, BooksByAuthor, BooksByAuthorEmail])
