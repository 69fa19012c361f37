"""What the tests call over DDP: methods that succeed, fail, write, wait; publications."""

import gevent

from dddp.api import API, Collection, MeteorError, Publication
from tests.testapp import models


class Note(Collection):
    model = models.Note


class AllNotes(Publication):
    queries = [models.Note.objects.all()]


class NotesByText(Publication):
    def get_queries(self, text):
        return [models.Note.objects.filter(text=text)]


API.register([Note, AllNotes, NotesByText])


@API.method
def echo(this, *args):
    """Return the params as received (EJSON-decoded), as a list."""
    return list(args)


@API.method
def add(this, a, b):
    return a + b


@API.method
def nothing(this):
    """Returns None: the result message has no `result` key."""


@API.method
def fail_client_safe(this):
    raise MeteorError("not-allowed", "You may not", {"why": "testing"})


@API.method
def fail_internal(this):
    raise ValueError("secret internal detail")


@API.method
def unencodable_result(this):
    return {1, 2}


@API.method
def add_note(this, text):
    return str(models.Note.objects.create(text=text).pk)


@API.method
def add_note_then_fail(this, text):
    models.Note.objects.create(text=text)
    raise MeteorError(409, "Changed my mind")


@API.method
def count_notes(this, text):
    return models.Note.objects.filter(text=text).count()


@API.method
def sleep(this, seconds):
    """Hold a worker for `seconds`: for ordering and shutdown tests."""
    gevent.sleep(seconds)
    return seconds


@API.method
def connection_info(this):
    return {
        "id": this.connection.id,
        "user_id": this.user_id,
        "random_seed": this.random_seed,
        "has_client_address": bool(this.connection.client_address),
        "cookie": this.connection.http_headers.get("cookie"),
    }


@API.method
def patch_state(this):
    """Whether the entry point patched for gevent, and did it before Django was imported."""
    import socket
    import sys
    import threading

    import gevent.socket
    import psycopg2.extensions

    return {
        "socket": socket.socket is gevent.socket.socket,
        "threading": "gevent" in type(threading.local()).__module__,
        "psycopg2_waits_for_gevent": psycopg2.extensions.get_wait_callback() is not None,
        "django_imported_after_patch": getattr(
            sys.modules["dddp.server.main"], "DJANGO_WAS_IMPORTED_BEFORE_PATCH", None
        )
        is False,
    }


class AuthorCollection(Collection):
    model = models.Author


class BookCollection(Collection):
    model = models.Book
    client_writes = ("insert", "update", "remove")  # as the model permissions allow (dddp.writes)


class TagCollection(Collection):
    model = models.Tag


class BooksTagged(Publication):
    """Filters through a many-to-many relation."""

    def get_queries(self, tag_name):
        return [models.Book.objects.filter(tags__name=tag_name)]


class TagsOfBook(Publication):
    """Joins only the many-to-many table, whose changes arrive as changes of Book."""

    def get_queries(self, book_id):
        return [models.Tag.objects.filter(books=book_id)]


class AllBooks(Publication):
    queries = [models.Author.objects.all(), models.Book.objects.all()]


class BooksByAuthorEmail(Publication):
    def get_queries(self, author_email):
        return [
            models.Author.objects.filter(email=author_email),
            models.Book.objects.filter(author__email=author_email),
        ]


class LongBooks(Publication):
    """Filters on the row's own columns only: decided in memory."""

    def get_queries(self, min_pages):
        return [models.Book.objects.filter(pages__gte=min_pages)]


class BooksByAuthor(Publication):
    """Filters on the row's own foreign key (and title): filed by value (dddp.server.routing)."""

    def get_queries(self, author_id, title=None):
        books = models.Book.objects.filter(author=author_id)
        return [books.filter(title=title) if title is not None else books]


class BooksTitled(Publication):
    """An `__in` filter: filed under each of its values, which other observers' overlap."""

    def get_queries(self, titles):
        return [models.Book.objects.filter(title__in=titles)]


class BooksTitledTagged(Publication):
    """A column and a join: filed by title, membership decided by the database."""

    def get_queries(self, title, tag_name):
        return [models.Book.objects.filter(title=title, tags__name=tag_name)]


class BooksOfAuthorEmail(Publication):
    """Books only, through a join (and maybe a tag): an author's changes are routed by the
    books that refer to it, since no query of the author itself holds them."""

    def get_queries(self, author_email, tag_name=None):
        books = models.Book.objects.filter(author__email=author_email)
        return [books.filter(tags__name=tag_name) if tag_name is not None else books]


class AuthorById(Publication):
    """Filters on the primary key: filed by document id."""

    def get_queries(self, author_id):
        return [models.Author.objects.filter(pk=author_id)]


class FragileBooks(Publication):
    """Works until a book has 13 pages: then its query divides by zero."""

    def get_queries(self, author_email):
        return [
            models.Book.objects.filter(author__email=author_email).extra(where=["100 / (pages - 13) <> 0"])
        ]


class SlowTags(Publication):
    """Its query takes `seconds` (PostgreSQL sleeps in it): a first read that takes a while."""

    def get_queries(self, seconds):
        from django.db.models.expressions import RawSQL

        slow = RawSQL(
            "SELECT t.id FROM testapp_tag t CROSS JOIN (SELECT pg_sleep(%s)) AS s", [float(seconds)]
        )
        return [models.Tag.objects.filter(pk__in=slow)]


class FailingPublication(Publication):
    def get_queries(self):
        raise ValueError("publication bug")


class RefusingPublication(Publication):
    def get_queries(self):
        raise MeteorError(403, "Not for you")


# Mistakes only a subscription can find (the system checks pass: get_queries takes params).


class MisspeltAuthors(Publication):
    """A misspelt field in a filter: Django raises FieldError inside get_queries."""

    def get_queries(self, author_email):
        return [models.Author.objects.filter(emial=author_email)]


class MisorderedBooks(Publication):
    """A misspelt field in an F() ordering: FieldError only when the first read compiles it."""

    def get_queries(self, author_email):
        from django.db.models import F

        return [models.Book.objects.filter(author__email=author_email).order_by(F("titel"))]


class UnpublishedDatedNotes(Publication):
    """DatedNote has a table of its own and no Collection (dddp.E008 had it been static)."""

    def get_queries(self, text):
        return [models.DatedNote.objects.filter(text=text)]


API.register(
    [
        TagCollection,
        BooksTagged,
        TagsOfBook,
        AuthorCollection,
        BookCollection,
        AllBooks,
        BooksByAuthorEmail,
        LongBooks,
        BooksByAuthor,
        BooksTitled,
        BooksTitledTagged,
        BooksOfAuthorEmail,
        AuthorById,
        FailingPublication,
        FragileBooks,
        SlowTags,
        RefusingPublication,
        MisspeltAuthors,
        MisorderedBooks,
        UnpublishedDatedNotes,
    ]
)


@API.method
def add_book(this, title, author_email, pages=0):
    author = models.Author.objects.get(email=author_email)
    return str(models.Book.objects.create(title=title, author=author, pages=pages).pk)


class TaskCollection(Collection):
    model = models.Task
    name = "tasks"  # the name a Meteor app gives its collection: `new Mongo.Collection("tasks")`
    client_writes = ("insert", "update", "remove")  # as the model permissions and these rules allow

    @classmethod
    def allow_insert(cls, user, doc):
        """Anyone logged in may add a task, permission or not."""
        return user.is_authenticated

    @classmethod
    def deny_update(cls, user, task, field_names, modifier):
        """A task marked done stays done, whoever asks."""
        return task.text.endswith("(done)")


class LabelCollection(Collection):
    model = models.Label
    client_writes = ("insert", "remove")
    allow_by_model_permission = False  # its rules alone decide, and it has none for remove

    @classmethod
    def allow_insert(cls, user, doc):
        return user.is_authenticated


class AllTasks(Publication):
    queries = [models.Task.objects.all()]


API.register([TaskCollection, LabelCollection, AllTasks])


@API.method
def add_tasks(this, *texts):
    """One Task per text, with a Label between them; returns the tasks' ids in order."""
    ids = []
    for text in texts:
        ids.append(models.Task.objects.create(text=text).id)
        models.Label.objects.create(name=text)
    return ids


@API.method
def unblocked_sleep(this, seconds):
    """Meteor's this.unblock(), then a sleep: later calls on the connection need not wait."""
    this.unblock()
    gevent.sleep(seconds)
    return seconds


@API.method
def login_as(this, username):
    """Test only: log the connection in as a user the test made (None: log out)."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=username) if username is not None else None
    this.set_user_id(user.pk if user is not None else None)
