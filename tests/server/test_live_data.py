"""Live publications: committed ORM changes reach subscribers as added/changed/removed.

Writes are made by this test process through the ORM, committed for real, and
travel through PostgreSQL NOTIFY to the server under test.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import transaction

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess
from tests.testapp.models import Author, Book, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def unique_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def author_doc(author: Author) -> dict[str, Any]:
    return {"name": author.name, "email": author.email}


def test_subscribe_sends_every_document_then_ready(client: DDPClient) -> None:
    """D-52."""
    author = Author.objects.create(name="Janet", email=unique_email())
    book = Book.objects.create(title="One", author=author, pages=300)
    messages = client.sub("BooksByAuthorEmail", author.email, id="s")
    assert messages[:-1] == [
        {"msg": "added", "collection": "testapp.author", "id": str(author.pk), "fields": author_doc(author)},
        {
            "msg": "added",
            "collection": "testapp.book",
            "id": str(book.pk),
            "fields": {
                "title": "One",
                "author": str(author.pk),
                "body": "",
                "published": None,
                "price": None,
                "pages": 300,
                "isbn": None,
                "cover": None,
                "updated_at": None,
                "tags": [],
            },
        },
    ]
    assert messages[-1] == {"msg": "ready", "subs": ["s"]}


def test_create_update_delete_reach_the_subscriber(client: DDPClient) -> None:
    author = Author.objects.create(name="A", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    book = Book.objects.create(title="New", author=author)
    added = client.recv()
    assert added["msg"] == "added" and added["id"] == str(book.pk) and added["fields"]["title"] == "New"
    book.title = "Renamed"
    book.save()
    assert client.recv() == {
        "msg": "changed",
        "collection": "testapp.book",
        "id": str(book.pk),
        "fields": {"title": "Renamed"},
    }
    book_id = str(book.pk)
    book.delete()
    assert client.recv() == {"msg": "removed", "collection": "testapp.book", "id": book_id}
    client.assert_silent()


def next_is_marker(client: DDPClient, author: Author) -> None:
    """A committed write after the one under test: its message must be the next one.

    Notifications arrive in commit order, so anything the write under test had
    sent would come first: no waiting for a silence that proves nothing.
    """
    marker = Book.objects.create(title="Marker", author=author)
    message = client.recv()
    assert (message["msg"], message["id"], message["fields"]["title"]) == ("added", str(marker.pk), "Marker")


def test_save_without_changes_sends_nothing(client: DDPClient) -> None:
    """D-58: never an empty changed."""
    author = Author.objects.create(name="Same", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    author.save()
    next_is_marker(client, author)


def test_rolled_back_changes_are_never_seen(client: DDPClient) -> None:
    author = Author.objects.create(name="R", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    with pytest.raises(RuntimeError), transaction.atomic():
        Book.objects.create(title="Ghost", author=author)
        raise RuntimeError
    next_is_marker(client, author)


def test_a_transaction_is_seen_after_its_commit_and_as_its_net_effect(client: DDPClient) -> None:
    author = Author.objects.create(name="T", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    with transaction.atomic():
        first = Book.objects.create(title="First", author=author)
        second = Book.objects.create(title="Second", author=author)
        first.delete()
        client.assert_silent(0.3)
    added = client.recv()
    assert (added["msg"], added["id"]) == ("added", str(second.pk))
    client.assert_silent()


def test_successive_commits_arrive_in_commit_order(client: DDPClient) -> None:
    author = Author.objects.create(name="Order", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    for name in ("b", "c", "d"):
        author.name = name
        author.save()
    # Notifications that arrive together may be merged into one message per document.
    names = [m["fields"]["name"] for m in client.recv_until(lambda m: m["fields"]["name"] == "d")]
    assert names == sorted(names) and len(set(names)) == len(names) and names[-1] == "d"
    client.assert_silent()


def test_book_moved_to_another_author_leaves_one_subscription_and_enters_the_other(server, client) -> None:  # type: ignore[no-untyped-def]
    """Exact membership: the row's own change moves it between filtered publications."""
    old, new = (
        Author.objects.create(name="Old", email=unique_email()),
        Author.objects.create(name="New", email=unique_email()),
    )
    book = Book.objects.create(title="Moving", author=old)
    with DDPClient(server.ws_url) as other:
        other.connect()
        client.sub("BooksByAuthorEmail", old.email, id="old")
        other.sub("BooksByAuthorEmail", new.email, id="new")
        book.author = new
        book.save()
        assert client.recv() == {"msg": "removed", "collection": "testapp.book", "id": str(book.pk)}
        entered = other.recv()
        assert entered["msg"] == "added" and entered["id"] == str(book.pk)
        assert entered["fields"]["author"] == str(new.pk)
        client.assert_silent()
        other.assert_silent()


def test_author_email_change_moves_their_books_between_subscriptions(server, client) -> None:  # type: ignore[no-untyped-def]
    """Exact membership through a join: a related row's change re-decides membership."""
    author = Author.objects.create(name="Mover", email=unique_email())
    book = Book.objects.create(title="Carried along", author=author)
    old_email, new_email = author.email, unique_email()
    with DDPClient(server.ws_url) as other:
        other.connect()
        client.sub("BooksByAuthorEmail", old_email, id="old")
        other.sub("BooksByAuthorEmail", new_email, id="new")
        author.email = new_email
        author.save()
        removed = sorted((m["collection"], m["id"]) for m in [client.recv(), client.recv()])
        assert removed == [("testapp.author", str(author.pk)), ("testapp.book", str(book.pk))]
        entered = sorted((m["msg"], m["collection"], m["id"]) for m in [other.recv(), other.recv()])
        assert entered == [
            ("added", "testapp.author", str(author.pk)),
            ("added", "testapp.book", str(book.pk)),
        ]
        client.assert_silent()
        other.assert_silent()


def test_author_email_change_moves_their_books_when_only_books_are_published(server, client) -> None:  # type: ignore[no-untyped-def]
    """Through a join, with no query of the author itself: the author's change finds the
    subscriptions of its old email by the books they hold, and of its new one by value;
    one of another email hears nothing (the marker write is the next thing it gets)."""
    author = Author.objects.create(name="Mover", email=unique_email())
    bystander = Author.objects.create(name="Still", email=unique_email())
    book = Book.objects.create(title="Carried along", author=author)
    old_email, new_email = author.email, unique_email()
    with DDPClient(server.ws_url) as other, DDPClient(server.ws_url) as third:
        other.connect()
        third.connect()
        client.sub("BooksOfAuthorEmail", old_email, id="old")
        other.sub("BooksOfAuthorEmail", new_email, id="new")
        assert third.sub("BooksOfAuthorEmail", bystander.email, id="still")[-1]["msg"] == "ready"
        author.email = new_email
        author.save()
        assert client.recv() == {"msg": "removed", "collection": "testapp.book", "id": str(book.pk)}
        entered = other.recv()
        assert (entered["msg"], entered["id"]) == ("added", str(book.pk))
        marker = Book.objects.create(title="Marker", author=bystander)
        assert third.recv()["id"] == str(marker.pk)
        client.assert_silent()
        other.assert_silent()


def test_in_memory_filter_adds_and_removes_as_values_cross_the_bound(client: DDPClient) -> None:
    author = Author.objects.create(name="Pages", email=unique_email())
    bound = 10_000 + uuid.uuid4().int % 1_000_000
    client.sub("LongBooks", bound, id="long")
    book = Book.objects.create(title="Short", author=author, pages=bound - 1)
    client.assert_silent()
    book.pages = bound
    book.save()
    assert client.recv()["msg"] == "added"
    book.pages = bound + 5
    book.save()
    assert client.recv() == {
        "msg": "changed",
        "collection": "testapp.book",
        "id": str(book.pk),
        "fields": {"pages": bound + 5},
    }
    book.pages = 1
    book.save()
    assert client.recv() == {"msg": "removed", "collection": "testapp.book", "id": str(book.pk)}


def test_unsub_withdraws_documents_then_sends_nosub(client: DDPClient) -> None:
    """D-53."""
    author = Author.objects.create(name="U", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    client.send({"msg": "unsub", "id": "s"})
    assert client.recv() == {"msg": "removed", "collection": "testapp.author", "id": str(author.pk)}
    assert client.recv() == {"msg": "nosub", "id": "s"}
    author.name = "after unsub"
    author.save()
    client.assert_silent()


def test_two_subscriptions_of_one_document_merge(client: DDPClient) -> None:
    """D-76 (a)-(c) over the wire: one added, no removed until the last sub leaves."""
    author = Author.objects.create(name="Shared", email=unique_email())
    first = client.sub("BooksByAuthorEmail", author.email, id="a")
    assert [m["msg"] for m in first] == ["added", "ready"]
    assert client.sub("BooksByAuthorEmail", author.email, id="b") == [{"msg": "ready", "subs": ["b"]}]
    client.send({"msg": "unsub", "id": "a"})
    assert client.recv() == {"msg": "nosub", "id": "a"}
    client.send({"msg": "unsub", "id": "b"})
    assert client.recv() == {"msg": "removed", "collection": "testapp.author", "id": str(author.pk)}
    assert client.recv() == {"msg": "nosub", "id": "b"}


def test_method_writes_are_sent_before_its_updated(client: DDPClient) -> None:
    """D-82: `updated` means the method's data messages are already on the wire."""
    author = Author.objects.create(name="Fenced", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    reply = client.call("add_book", "Written by a method", author.email, id="m")
    kinds = [m["msg"] for m in reply["messages"]]
    assert kinds.index("added") < kinds.index("updated")
    assert reply["result"]["result"] == next(m["id"] for m in reply["messages"] if m["msg"] == "added")


def test_large_text_field_arrives_intact(client: DDPClient) -> None:
    """Payloads past PostgreSQL's 8000 bytes are chunked and reassembled."""
    author = Author.objects.create(name="Big", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    body = ("lorem ipsum é ✓ " * 7000)[:100_000]
    Book.objects.create(title="Tome", author=author, body=body)
    added = client.recv()
    assert added["fields"]["body"] == body


def test_field_types_are_published_as_documented(client: DDPClient) -> None:
    import datetime as dt
    from decimal import Decimal

    author = Author.objects.create(name="Types", email=unique_email())
    client.sub("BooksByAuthorEmail", author.email, id="s")
    isbn = uuid.uuid4()
    Book.objects.create(
        title="Typed",
        author=author,
        published=dt.date(2024, 2, 29),
        price=Decimal("12.50"),
        isbn=isbn,
        cover=b"\x00\x01\xff",
        updated_at=dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc),
    )
    fields = client.recv()["fields"]
    assert fields["published"] == "2024-02-29"
    assert fields["price"] == "12.50"
    assert fields["isbn"] == str(isbn)
    assert fields["cover"] == {"$binary": "AAH/"}
    assert fields["updated_at"] == {"$date": 1704164645678}


def test_publication_raising_gets_nosub_500(client: DDPClient) -> None:
    """D-54, D-42."""
    [nosub] = client.sub("FailingPublication", id="f")
    assert nosub == {
        "msg": "nosub",
        "id": "f",
        "error": {
            "isClientSafe": True,
            "error": 500,
            "reason": "Internal server error",
            "message": "Internal server error [500]",
            "errorType": "Meteor.Error",
        },
    }


def test_publication_raising_meteor_error_passes_it_on(client: DDPClient) -> None:
    [nosub] = client.sub("RefusingPublication", id="r")
    assert nosub["error"]["error"] == 403 and nosub["error"]["reason"] == "Not for you"


# --- many-to-many ---------------------------------------------------------------------


def book_changes(client: DDPClient, book: Book) -> dict[str, Any]:
    message = client.recv()
    assert (message["msg"], message["id"]) == ("changed", str(book.pk)), message
    return message["fields"]


def test_many_to_many_lists_follow_add_remove_and_clear_from_either_side(client: DDPClient) -> None:
    author = Author.objects.create(name="Tagger", email=unique_email())
    book = Book.objects.create(title="Tagged", author=author)
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    client.sub("BooksByAuthorEmail", author.email, id="s")
    book.tags.add(red, blue)
    # In the order they were added: Django adds a set, so the order is its rows'.
    added = Book.tags.through.objects.filter(book=book).order_by("pk").values_list("tag_id", flat=True)
    assert book_changes(client, book) == {"tags": [str(pk) for pk in added]}
    book.tags.remove(red)
    assert book_changes(client, book) == {"tags": [str(blue.pk)]}
    red.books.add(book)  # the reverse side
    assert book_changes(client, book) == {"tags": [str(blue.pk), str(red.pk)]}
    blue.books.clear()  # reverse clear: the book loses blue
    assert book_changes(client, book) == {"tags": [str(red.pk)]}
    book.tags.clear()
    assert client.recv() == {
        "msg": "changed",
        "collection": "testapp.book",
        "id": str(book.pk),
        "fields": {"tags": []},
    }
    book.title = "Still untagged"
    book.save()  # a save keeps the list it does not carry
    assert book_changes(client, book) == {"title": "Still untagged"}
    client.assert_silent()


def test_filter_through_many_to_many_adds_and_removes_with_the_relation(client: DDPClient) -> None:
    author = Author.objects.create(name="Through", email=unique_email())
    book = Book.objects.create(title="Entering", author=author)
    tag = Tag.objects.create(name=f"tag-{uuid.uuid4().hex[:8]}")
    client.sub("BooksTagged", tag.name, id="t")
    book.tags.add(tag)
    added = client.recv()
    assert added["msg"] == "added" and added["id"] == str(book.pk)
    assert added["fields"]["tags"] == [str(tag.pk)] and added["fields"]["title"] == "Entering"
    book.tags.remove(tag)
    assert client.recv() == {"msg": "removed", "collection": "testapp.book", "id": str(book.pk)}


def test_a_filter_on_the_many_to_many_table_alone_follows_the_relation(client: DDPClient) -> None:
    """Tag.objects.filter(books=id) reads only testapp_book_tags: Book's changes re-run it."""
    author = Author.objects.create(name="Joined", email=unique_email())
    book = Book.objects.create(title="Lonely", author=author)
    tag = Tag.objects.create(name=f"tag-{uuid.uuid4().hex[:8]}")
    assert client.sub("TagsOfBook", str(book.pk), id="t") == [{"msg": "ready", "subs": ["t"]}]
    book.tags.add(tag)
    assert client.recv() == {
        "msg": "added",
        "collection": "testapp.tag",
        "id": str(tag.pk),
        "fields": {"name": tag.name},
    }
    tag.books.remove(book)  # the reverse side
    assert client.recv() == {"msg": "removed", "collection": "testapp.tag", "id": str(tag.pk)}


def test_publication_failing_after_ready_withdraws_its_documents_then_nosub_500(
    server: ServerProcess, client: DDPClient
) -> None:
    """D-54: the error ends the subscription, documents first; the session goes on."""
    author = Author.objects.create(name="Fragile", email=unique_email())
    book = Book.objects.create(title="Fine", author=author, pages=10)
    assert [m["msg"] for m in client.sub("FragileBooks", author.email, id="f")] == ["added", "ready"]
    start = len(server.log)
    book.pages = 13
    book.save()
    assert client.recv() == {"msg": "removed", "collection": "testapp.book", "id": str(book.pk)}
    nosub = client.recv()
    assert nosub["msg"] == "nosub" and nosub["id"] == "f" and nosub["error"]["error"] == 500
    server.wait_for_log(r"publication FragileBooks failed", start=start)
    client.send({"msg": "ping", "id": "alive"})
    assert client.recv() == {"msg": "pong", "id": "alive"}


def test_ten_thousand_row_publication_arrives_as_one_message_per_document(client: DDPClient) -> None:
    """D-52 at size: every document is its own `added`, then one `ready`."""
    from tests.testapp.models import Note

    text = f"bulk-{uuid.uuid4().hex[:8]}"
    Note.objects.bulk_create([Note(text=text) for _ in range(10_000)])
    messages = client.sub("NotesByText", text, id="big")
    assert len(messages) == 10_001
    assert {m["msg"] for m in messages[:-1]} == {"added"}
    assert len({m["id"] for m in messages[:-1]}) == 10_000
    assert messages[-1] == {"msg": "ready", "subs": ["big"]}
