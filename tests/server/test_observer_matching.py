"""An Observer decides a change's membership in memory when its querysets allow, with
no query; the user's own document (`pk=user_id`) is one such case (dddp.matching)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from dddp.accounts.ddp import CurrentUser
from dddp.api import API, Publication
from dddp.changes import Change
from dddp.documents import document_fields, document_id
from dddp.server.observer import Observer

pytestmark = pytest.mark.django_db

User: Any = get_user_model()


def saved(user: Any) -> Change:
    return Change("save", "users", document_id(user.pk), document_fields(user))


def test_the_users_document_follows_changes_of_every_user_row_with_no_query(
    django_assert_num_queries: Any,
) -> None:
    """Each login saves a user row (last_login): a process with 1,000 logged-in users
    offers it to 1,000 such observers, which must not each ask the database."""
    me, other = (User.objects.create_user(f"observed-{n}", f"o{n}@example.com", "pw") for n in range(2))
    observer = Observer(API, CurrentUser, [], me.pk)
    observer.install(observer.read())
    me.first_name, other.first_name = "Me", "Other"
    with django_assert_num_queries(0):
        observer.apply([saved(other), saved(me)])
    assert set(observer.documents["users"]) == {document_id(me.pk)}
    with django_assert_num_queries(0):
        observer.apply([Change("delete", "users", document_id(me.pk))])
    assert observer.documents["users"] == {}


def test_a_join_s_column_as_the_whole_filter_takes_membership_from_the_routing_s_values(
    django_assert_num_queries: Any,
) -> None:
    """`Book.objects.filter(author__email=e)`: the hub read each changed book's author's
    email to route the batch; the observer decides with those, asking nothing again."""
    from tests.testapp.ddp import BooksOfAuthorEmail
    from tests.testapp.models import Author, Book

    author = Author.objects.create(name="a", email="a@example.com")
    observer = Observer(API, BooksOfAuthorEmail, ["a@example.com"], None)
    observer.install(observer.read())
    book = Book.objects.create(title="t", author=author)
    change = Change("save", "testapp.book", document_id(book.pk), document_fields(book))
    term = observer.queries[0].term
    assert term is not None and term.whole
    path = ("testapp.book", term.field)
    with django_assert_num_queries(0):
        observer.apply([change], {path: {change.id: term.key("a@example.com")}})
    assert set(observer.documents["testapp.book"]) == {change.id}
    with django_assert_num_queries(0):
        observer.apply([change], {path: {change.id: term.key("b@example.com")}})  # (another author's)
    assert observer.documents["testapp.book"] == {}
    with django_assert_num_queries(1):  # no values read for it (the read failed): the database's
        observer.apply([change], {})
    assert set(observer.documents["testapp.book"]) == {change.id}


class BooksOfAuthorsWithATitle(Publication):
    """Joins its own table again: one book decides whether its author's others belong."""

    def get_queries(self, title: str) -> list[Any]:
        from tests.testapp.models import Book

        return [Book.objects.filter(author__books__title=title).distinct()]


class BooksSharingATagWith(Publication):
    """Reaches its own many-to-many table from other rows (and not its own table: the book
    is a column there): another book's tags decide."""

    def get_queries(self, book_id: int) -> list[Any]:
        from tests.testapp.models import Book

        return [Book.objects.filter(tags__books=book_id).distinct()]


def book_saved(book: Any) -> Change:
    return Change("save", "testapp.book", document_id(book.pk), document_fields(book))


def test_a_queryset_joining_its_own_rows_again_follows_the_other_rows_changes() -> None:
    from tests.testapp.models import Author, Book

    author = Author.objects.create(name="a", email="a@example.com")
    first = Book.objects.create(title="y", author=author)
    observer = Observer(API, BooksOfAuthorsWithATitle, ["x"], None)
    observer.install(observer.read())
    assert observer.documents.get("testapp.book", {}) == {}
    second = Book.objects.create(title="x", author=author)  # the author now has a book titled x
    observer.apply([book_saved(second)])
    assert set(observer.documents["testapp.book"]) == {document_id(first.pk), document_id(second.pk)}
    second.title = "z"
    second.save()
    observer.apply([book_saved(second)])
    assert observer.documents["testapp.book"] == {}


def test_a_queryset_reaching_its_many_to_many_table_from_other_rows_follows_their_changes() -> None:
    from tests.testapp.models import Author, Book, Tag

    author = Author.objects.create(name="a", email="a@example.com")
    tag = Tag.objects.create(name="shared")
    tagged = Book.objects.create(title="y", author=author)
    titled = Book.objects.create(title="x", author=author)
    tagged.tags.add(tag)
    observer = Observer(API, BooksSharingATagWith, [titled.pk], None)
    observer.install(observer.read())
    assert observer.documents.get("testapp.book", {}) == {}
    titled.tags.add(tag)  # sent as a change of `titled`'s tags only
    observer.apply(
        [Change("save", "testapp.book", document_id(titled.pk), {"tags": [str(tag.pk)]}, partial=True)]
    )
    assert set(observer.documents["testapp.book"]) == {document_id(tagged.pk), document_id(titled.pk)}
