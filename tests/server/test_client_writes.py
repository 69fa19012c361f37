"""A client's Collection.insert/update/remove over a real server (M-1 to M-4, R-2, D-81, D-82).

The collections of tests/testapp/ddp.py that take client writes: `tasks`
(Meteor ids; anyone logged in may insert, a task marked done stays done),
`testapp.book` (by model permission alone) and `testapp.label` (its rules
alone, none for remove). Users are made here, with the permissions a test
needs, and a connection logs in as one with the test method `login_as`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from dddp.protocol.random import RandomStreams
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess
from tests.testapp.models import Author, Book, Tag, Task

pytestmark = pytest.mark.django_db(transaction=True)

REPLACEMENT = (
    "Access denied. In a restricted collection you can only update documents, not replace them. "
    "Use a Mongo update operator, such as '$set'."
)


def make_user(*permissions: str, superuser: bool = False) -> str:
    """A user with these testapp permissions ("change_book", ...); returns the username."""
    username = f"user-{uuid.uuid4().hex[:8]}"
    users = get_user_model().objects
    user = users.create_superuser(username) if superuser else users.create_user(username)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="testapp", codename__in=permissions)
    )
    return username


def log_in(client: DDPClient, username: str | None) -> None:
    assert "error" not in client.call("login_as", username, id="login")["result"]


def call(client: DDPClient, method: str, *params: Any, **extra: Any) -> dict[str, Any]:
    """Call a write method; check D-81 (one result, one updated) and return the result message."""
    reply = client.call(method, *params, id="w", **extra)
    answers = [m for m in reply["messages"] if m.get("msg") in ("result", "updated")]
    assert answers in ([reply["result"], reply["updated"]], [reply["updated"], reply["result"]])
    assert reply["updated"] == {"msg": "updated", "methods": ["w"]}
    return reply["result"]


def error_of(client: DDPClient, method: str, *params: Any) -> tuple[int, str]:
    error = call(client, method, *params)["error"]
    return error["error"], error["reason"]


def wait_for_document(
    client: DDPClient, collection: str, doc_id: str, expected: dict[str, Any] | None, timeout: float = 10.0
) -> None:
    """Read messages until the client holds `expected` as the document (None: holds no such document)."""
    client.wait_until(
        lambda: client.collections.get(collection, {}).get(doc_id) == expected,
        lambda: f"{collection} {doc_id} never became {expected}: {client.collections.get(collection)}",
        timeout,
    )


def book_document(book: Book, **fields: Any) -> dict[str, Any]:
    """A book's document as published (tests/server/test_live_data.py), with these fields changed."""
    document = {
        "title": book.title,
        "author": str(book.author_id),
        "body": "",
        "published": None,
        "price": None,
        "pages": 0,
        "isbn": None,
        "cover": None,
        "updated_at": None,
        "tags": [],
    }
    return {**document, **fields}


@pytest.fixture
def watcher(server: ServerProcess) -> Iterator[DDPClient]:
    """A second client, subscribed to every task and book."""
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        ddp.sub("AllTasks", id="tasks")
        ddp.sub("AllBooks", id="books")
        yield ddp


@pytest.fixture
def book() -> Book:
    author = Author.objects.create(name="Janet", email=f"{uuid.uuid4().hex[:8]}@example.com")
    return Book.objects.create(title="One", author=author)


# --- insert --------------------------------------------------------------------------


def test_insert_gets_the_id_the_clients_stub_drew_and_its_added_comes_before_updated(
    client: DDPClient, watcher: DDPClient
) -> None:
    """M-1, R-2, R-6: a top-level Tasks.insert({...}) sends no _id, only a randomSeed; D-82."""
    log_in(client, make_user())
    client.sub("AllTasks", id="mine")
    seed = secrets.token_hex(10)
    expected = RandomStreams(seed).stream("/collection/tasks").id()

    reply = client.call("/tasks/insert", {"text": "hi"}, id="ins", randomSeed=seed)

    assert reply["result"] == {"msg": "result", "id": "ins", "result": expected}
    kinds = [(m["msg"], m.get("id")) for m in reply["messages"]]
    assert kinds.index(("added", expected)) < kinds.index(("updated", None))
    assert client.collections["tasks"][expected] == {"text": "hi"}
    wait_for_document(watcher, "tasks", expected, {"text": "hi"})


def test_insert_with_the_clients_own_id_keeps_it(client: DDPClient, watcher: DDPClient) -> None:
    """M-1: @meteorrn/core always sends an _id of its own, and Meteor 3 clients call insertAsync."""
    log_in(client, make_user())

    assert call(client, "/tasks/insertAsync", {"_id": "ownIdOfTheClient", "text": "x"})["result"] == (
        "ownIdOfTheClient"
    )
    wait_for_document(watcher, "tasks", "ownIdOfTheClient", {"text": "x"})


def test_insert_into_an_integer_keyed_collection_gets_the_databases_id(
    client: DDPClient, watcher: DDPClient, book: Book
) -> None:
    log_in(client, make_user("add_book"))

    book_id = call(client, "/testapp.book/insert", {"title": "Two", "author": str(book.author_id)})["result"]

    assert Book.objects.get(pk=book_id).title == "Two"
    wait_for_document(watcher, "testapp.book", book_id, book_document(book, title="Two"))


# --- update and remove ---------------------------------------------------------------


def test_update_sets_fields_and_subscribers_get_the_change(client: DDPClient, watcher: DDPClient) -> None:
    task = Task.objects.create(text="before")
    wait_for_document(watcher, "tasks", task.pk, {"text": "before"})
    log_in(client, make_user("change_task"))

    assert call(client, "/tasks/update", {"_id": task.pk}, {"$set": {"text": "after"}}, {})["result"] == 1

    wait_for_document(watcher, "tasks", task.pk, {"text": "after"})


def test_many_to_many_push_and_pull_reach_subscribers(
    client: DDPClient, watcher: DDPClient, book: Book
) -> None:
    tag = Tag.objects.create(name="crime")
    log_in(client, make_user("change_book"))
    book_id = str(book.pk)

    assert call(client, "/testapp.book/update", book_id, {"$push": {"tags": str(tag.pk)}})["result"] == 1
    wait_for_document(watcher, "testapp.book", book_id, book_document(book, tags=[str(tag.pk)]))

    assert call(client, "/testapp.book/updateAsync", book_id, {"$pull": {"tags": str(tag.pk)}})["result"] == 1
    wait_for_document(watcher, "testapp.book", book_id, book_document(book))


def test_remove_deletes_and_subscribers_get_removed(client: DDPClient, watcher: DDPClient) -> None:
    task = Task.objects.create(text="old")
    wait_for_document(watcher, "tasks", task.pk, {"text": "old"})
    log_in(client, make_user("delete_task"))

    assert call(client, "/tasks/remove", {"_id": task.pk})["result"] == 1

    wait_for_document(watcher, "tasks", task.pk, None)


def test_update_and_remove_of_a_missing_document_give_zero(client: DDPClient) -> None:
    """M-3: no error; result and updated still follow (D-81)."""
    log_in(client, make_user(superuser=True))

    assert call(client, "/tasks/update", "noSuchTaskId", {"$set": {"text": "x"}})["result"] == 0
    assert call(client, "/tasks/removeAsync", "noSuchTaskId")["result"] == 0


# --- refusals ------------------------------------------------------------------------


def test_a_refusal_is_a_client_safe_403_and_writes_nothing(client: DDPClient, book: Book) -> None:
    """M-3: anonymous, and no permission."""
    error = call(client, "/testapp.book/remove", str(book.pk))["error"]

    assert error == {
        "isClientSafe": True,
        "error": 403,
        "reason": "Access denied",
        "message": "Access denied [403]",
        "errorType": "Meteor.Error",
    }
    log_in(client, make_user("add_book"))
    assert error_of(client, "/testapp.book/update", str(book.pk), {"$set": {"title": "x"}}) == (
        403,
        "Access denied",
    )
    assert Book.objects.get().title == "One"


@pytest.mark.parametrize(
    ("method", "params", "reason"),
    [
        (
            "/tasks/update",
            [{"text": "x"}, {"$set": {"text": "y"}}],
            "Not permitted. Untrusted code may only update documents by ID.",
        ),
        (
            "/tasks/updateAsync",
            [{}, {"$set": {"text": "y"}}],
            "Not permitted. Untrusted code may only updateAsync documents by ID.",
        ),
        (
            "/tasks/remove",
            [{"_id": {"$ne": "x"}}],
            "Not permitted. Untrusted code may only remove documents by ID.",
        ),
        (
            "/tasks/update",
            ["someTaskId", {"text": "y"}],
            REPLACEMENT,
        ),
        (
            "/tasks/update",
            ["someTaskId", {"$set": {"text": "y"}}, {"upsert": True}],
            "Access denied. Upserts not allowed in a restricted collection.",
        ),
        (
            "/tasks/update",
            ["someTaskId", {"$rename": {"text": "name"}}],
            "Access denied. Operator $rename not allowed in a restricted collection.",
        ),
        (
            "/testapp.label/remove",
            ["someLabelId"],
            "Access denied. No allow validators set on restricted collection for method 'remove'.",
        ),
    ],
    ids=lambda value: str(value)[:30],
)
def test_every_refusal_of_meteor_has_its_text(
    client: DDPClient, method: str, params: list, reason: str
) -> None:
    """M-2, M-3, for a superuser: the form of the write is refused whoever asks."""
    log_in(client, make_user(superuser=True))

    assert error_of(client, method, *params) == (403, reason)


def test_a_deny_rule_vetoes_even_a_superuser(client: DDPClient) -> None:
    task = Task.objects.create(text="ship it (done)")
    log_in(client, make_user(superuser=True))

    assert error_of(client, "/tasks/update", task.pk, {"$set": {"text": "not yet"}}) == (403, "Access denied")
    assert Task.objects.get().text == "ship it (done)"


def test_logging_out_takes_the_allow_rule_away(client: DDPClient) -> None:
    log_in(client, make_user())
    assert "result" in call(client, "/tasks/insert", {"text": "in"})
    log_in(client, None)

    assert error_of(client, "/tasks/insert", {"text": "out"}) == (403, "Access denied")
    assert list(Task.objects.values_list("text", flat=True)) == ["in"]


def test_a_collection_that_takes_no_client_writes_has_no_write_methods(client: DDPClient) -> None:
    """M-4: the client's stub change is undone when updated comes."""
    assert error_of(client, "/testapp.note/insert", {"text": "x"}) == (
        404,
        "Method '/testapp.note/insert' not found",
    )
    assert error_of(client, "/testapp.label/update", "x", {"$set": {"name": "y"}})[0] == 404


# --- bad input -----------------------------------------------------------------------


def test_a_bad_value_is_400_naming_the_field(client: DDPClient, book: Book) -> None:
    log_in(client, make_user("change_book"))

    error = call(client, "/testapp.book/update", str(book.pk), {"$set": {"pages": "abc"}})["error"]

    assert (error["error"], error["reason"]) == (400, "pages: “abc” value must be an integer.")
    assert error["details"] == {"pages": ["“abc” value must be an integer."]}


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("/tasks/insert", ["not a document"]),
        ("/tasks/insert", []),
        ("/tasks/update", ["someTaskId"]),
        ("/tasks/update", ["someTaskId", ["$set"]]),
        ("/tasks/remove", ["someTaskId", "extra"]),
    ],
    ids=str,
)
def test_params_of_the_wrong_kind_are_400_match_failed(client: DDPClient, method: str, params: list) -> None:
    log_in(client, make_user(superuser=True))

    assert error_of(client, method, *params) == (400, "Match failed")
