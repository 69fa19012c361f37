# bookstore/ddp.py, as in the brief.

from bookstore import models
from dddp.api import API, Collection, Publication


class Book(Collection):
    model = models.Book
    # Meteor clients may call Books.insert/update/remove as their Django user's
    # permissions on books allow (a superuser; a user given them in the admin).
    client_writes = ("insert", "update", "remove")


class Author(Collection):
    model = models.Author


class AllBooks(Publication):
    queries = [
        models.Author.objects.all(),
        models.Book.objects.all(),
    ]


class BooksByAuthorEmail(Publication):
    def get_queries(self, author_email):
        return [
            models.Author.objects.filter(
                email=author_email,
            ),
            models.Book.objects.filter(
                author__email=author_email,
            ),
        ]


API.register([Book, Author, AllBooks, BooksByAuthorEmail])


@API.method
def add_book(this, title, author_email):
    """Add a book by `title` for the author with `author_email`; returns the book's id."""
    from dddp.api import MeteorError

    author = models.Author.objects.filter(email=author_email).first()
    if author is None:
        raise MeteorError(404, f"No author with email {author_email}")
    return str(models.Book.objects.create(title=title, author=author).pk)


@API.method
def count_books(this):
    """How many books the store has."""
    return models.Book.objects.count()
