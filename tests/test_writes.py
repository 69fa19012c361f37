"""dddp.writes and dddp.modifiers: a client's Collection.insert/update/remove onto model rows (M-1 to M-4).

The write methods run as the server runs them (`call_method`: one transaction,
errors as the client gets them) against the test database, for Collections
declared here or in tests/testapp/ddp.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission
from django.core.exceptions import ImproperlyConfigured

from dddp.api import API, Collection, MeteorError, Registry, method
from dddp.documents import document_id, many_to_many_ids
from dddp.methods import ConnectionInfo, MethodInvocation, call_method
from dddp.protocol.random import RandomStreams
from dddp.writes import write_methods
from tests.testapp import models
from tests.testapp.ddp import BookCollection, LabelCollection, TaskCollection
from tests.typesapp.models import CharKeyed

SEED = "b1d5e3e2b5a0f3c1e9d7"
TASKS_IDS = ["RfhKD4zm32A5tTiwy", "yZCwHErjXiRhj8aXP"]  # docs/ddp-protocol.md R-5, stream /collection/tasks

NOT_BY_ID = "Not permitted. Untrusted code may only {} documents by ID."
REPLACEMENT = (
    "Access denied. In a restricted collection you can only update documents, not replace them. "
    "Use a Mongo update operator, such as '$set'."
)
UPSERT = "Access denied. Upserts not allowed in a restricted collection."
NO_ALLOW_RULES = "Access denied. No allow validators set on restricted collection for method '{}'."


def write(
    collection: type[Collection], operation: str, *params: Any, user: Any = None, seed: str | None = SEED
) -> Any:
    """Call the collection's write method `operation` ("insert", "updateAsync"...) as `user`."""
    found = {m.name.rsplit("/", 1)[1]: m for m in write_methods(collection)}[operation]
    this = MethodInvocation(
        found.name,
        connection=ConnectionInfo(id="c"),
        user_id=None if user is None else user.pk,
        random_seed=seed,
    )
    return call_method(found, found.name, list(params), this)


def refusal(collection: type[Collection], operation: str, *params: Any, user: Any = None) -> MeteorError:
    with pytest.raises(MeteorError) as caught:
        write(collection, operation, *params, user=user)
    return caught.value


def make_user(*permissions: str, **extra: Any) -> Any:
    """A user with these testapp permissions ("add_book", ...)."""
    user = get_user_model().objects.create_user(f"user-{uuid.uuid4().hex[:8]}", **extra)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="testapp", codename__in=permissions)
    )
    return user


@pytest.fixture
def editor() -> Any:
    """May add, change and delete books and tasks, by model permission."""
    return make_user("add_book", "change_book", "delete_book", "add_task", "change_task", "delete_task")


@pytest.fixture
def author() -> models.Author:
    return models.Author.objects.create(name="Janet", email=f"{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture
def book(author: models.Author) -> models.Book:
    return models.Book.objects.create(title="One", author=author, pages=100)


@pytest.fixture
def tags() -> list[models.Tag]:
    return [models.Tag.objects.create(name=name) for name in ("a", "b", "c")]


def ids(*instances: Any) -> list[str]:
    return [document_id(instance.pk) for instance in instances]


# --- declaring -----------------------------------------------------------------------


def test_a_collection_without_client_writes_registers_no_write_methods() -> None:
    registry = Registry()
    registry.register([type("Notes", (Collection,), {"model": models.Note})])

    assert not [name for name in registry.methods if name.startswith("/")]


def test_each_operation_named_is_registered_under_meteors_name_and_its_async_alias() -> None:
    registry = Registry()
    notes = type("Notes", (Collection,), {"model": models.Note, "client_writes": ("update", "insert")})
    registry.register([notes])

    assert sorted(registry.methods) == [
        "/testapp.note/insert",
        "/testapp.note/insertAsync",
        "/testapp.note/update",
        "/testapp.note/updateAsync",
    ]


def test_the_test_apps_collections_with_client_writes_are_in_the_global_api() -> None:
    assert {"/tasks/insert", "/tasks/removeAsync", "/testapp.book/update", "/testapp.label/remove"} <= set(
        API.methods
    )
    assert "/testapp.label/update" not in API.methods
    assert "/testapp.note/insert" not in API.methods


@pytest.mark.parametrize(
    ("client_writes", "problem"),
    [("insert", "must be a list"), (["insert", "upsert"], "names 'upsert'")],
)
def test_client_writes_must_be_a_list_of_known_operations(client_writes: Any, problem: str) -> None:
    notes = type("Notes", (Collection,), {"model": models.Note, "client_writes": client_writes})

    with pytest.raises(ImproperlyConfigured, match=problem):
        Registry().register([notes])


@pytest.mark.parametrize(
    ("writable_fields", "problem"),
    [("text", "must be a list"), (["txet"], "names 'txet', which clients cannot write; .* are text")],
)
def test_writable_fields_must_be_a_list_of_fields_of_the_model(writable_fields: Any, problem: str) -> None:
    notes = type(
        "Notes",
        (Collection,),
        {"model": models.Note, "client_writes": ["insert"], "writable_fields": writable_fields},
    )

    with pytest.raises(ImproperlyConfigured, match=problem):
        Registry().register([notes])


def test_a_collection_with_a_shape_of_its_own_names_its_writable_fields() -> None:
    class Shaped(Collection):
        model = models.Note
        client_writes = ("insert",)

        @classmethod
        def shape(cls, fields: dict[str, Any]) -> dict[str, Any]:
            return {"words": len(fields["text"].split())}

    with pytest.raises(ImproperlyConfigured, match="writable_fields"):
        Registry().register([Shaped])
    Shaped.writable_fields = ["text"]
    Registry().register([Shaped])


def test_a_write_method_and_a_method_of_the_same_name_clash() -> None:
    registry = Registry()
    registry.register([method(lambda this, doc: None, name="/testapp.note/insert")])
    notes = type("Notes", (Collection,), {"model": models.Note, "client_writes": ("insert",)})

    with pytest.raises(
        ImproperlyConfigured, match=re.escape("two methods are registered as '/testapp.note/insert'")
    ):
        registry.register([notes])


# --- insert (M-1) --------------------------------------------------------------------


@pytest.mark.django_db
def test_insert_without_id_gets_the_id_the_clients_stub_drew_from_the_seed(editor: Any) -> None:
    """M-1, R-2: the n-th insert into "tasks" takes the n-th id of /collection/tasks."""
    expected = RandomStreams(SEED).stream("/collection/tasks").id()

    assert write(TaskCollection, "insert", {"text": "first"}, user=editor) == expected == TASKS_IDS[0]
    assert models.Task.objects.get(pk=expected).text == "first"


@pytest.mark.django_db
def test_insert_draws_its_id_before_the_rules_run(editor: Any) -> None:
    """As Meteor: a rule that inserts into the collection too cannot take the client's id."""

    class Tasks(TaskCollection):
        @classmethod
        def deny_insert(cls, user: Any, doc: dict[str, Any]) -> bool:
            models.Task.objects.create(text="audit")
            return False

    assert write(Tasks, "insert", {"text": "mine"}, user=editor) == TASKS_IDS[0]
    assert models.Task.objects.get(text="audit").pk == TASKS_IDS[1]


@pytest.mark.django_db
def test_insert_with_an_id_keeps_it_and_draws_nothing(editor: Any) -> None:
    """M-1: the client's own _id (as @meteorrn/core always sends)."""
    assert write(TaskCollection, "insertAsync", {"_id": "clientChosenId123", "text": "x"}, user=editor) == (
        "clientChosenId123"
    )
    assert models.Task.objects.get(pk="clientChosenId123").text == "x"


@pytest.mark.django_db
def test_insert_of_an_id_that_exists_is_409_and_the_row_is_kept(editor: Any) -> None:
    """M-3: a database constraint error is 409; the insert is never an update."""
    models.Task.objects.create(id="takenId", text="old")

    error = refusal(TaskCollection, "insert", {"_id": "takenId", "text": "new"}, user=editor)

    assert error.error == 409 and "duplicate key" in error.reason
    assert models.Task.objects.get(pk="takenId").text == "old"


@pytest.mark.django_db
def test_insert_never_overwrites_a_row_of_that_id_even_when_its_key_has_no_default() -> None:
    """Django's save() of a pk without a default would UPDATE the row that has it."""

    class Keyed(Collection):
        model = CharKeyed
        client_writes = ("insert",)
        allow_by_model_permission = False

        @classmethod
        def allow_insert(cls, user: Any, doc: dict[str, Any]) -> bool:
            return True

    CharKeyed.objects.create(key="taken", name="old")

    assert refusal(Keyed, "insert", {"_id": "taken", "name": "new"}).error == 409
    assert write(Keyed, "insert", {"_id": "free", "name": "new"}) == "free"
    assert dict(CharKeyed.objects.values_list("key", "name")) == {"taken": "old", "free": "new"}


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (5, "_id: an id is a string, got a number"),
        ("", "_id: an id cannot be empty."),
        ("x" * 18, "_id: Ensure this value has at most 17 characters (it has 18)."),
    ],
)
@pytest.mark.django_db
def test_insert_with_a_bad_id_is_400_naming_id(editor: Any, given: Any, reason: str) -> None:
    error = refusal(TaskCollection, "insert", {"_id": given, "text": "x"}, user=editor)

    assert (error.error, error.reason) == (400, reason)
    assert not models.Task.objects.exists()


@pytest.mark.django_db
def test_insert_into_an_integer_keyed_model_gets_the_databases_id_and_every_kind_of_value(
    editor: Any, author: models.Author, tags: list[models.Tag]
) -> None:
    """Values as dddp.documents publishes them: a foreign key's document id, ISO dates, decimal strings."""
    doc = {
        "title": "Two",
        "author": document_id(author.pk),
        "published": "2024-02-29",
        "price": "12.50",
        "pages": 320,
        "isbn": "12345678-1234-5678-1234-567812345678",
        "updated_at": dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.timezone.utc),
        "tags": ids(tags[2], tags[0]),
    }

    book_id = write(BookCollection, "insert", doc, user=editor)

    book = models.Book.objects.get()
    assert book_id == str(book.pk)
    assert (book.title, book.author, book.published, book.price, book.pages) == (
        "Two",
        author,
        dt.date(2024, 2, 29),
        decimal.Decimal("12.50"),
        320,
    )
    assert (book.isbn, book.updated_at) == (
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        doc["updated_at"],
    )
    assert set(book.tags.all()) == {tags[0], tags[2]}


@pytest.mark.django_db
def test_insert_with_an_id_into_a_model_whose_database_gives_ids_is_400(
    editor: Any, author: models.Author
) -> None:
    error = refusal(
        BookCollection, "insert", {"_id": "7", "title": "x", "author": str(author.pk)}, user=editor
    )

    assert (error.error, error.reason) == (400, "_id: the database gives testapp.book ids: leave _id out.")


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"title": "x", "pages": "abc"}, "pages: “abc” value must be an integer."),
        ({"title": "x", "pages": True}, "pages: a boolean is not a value of this field."),
        ({"title": "x", "pages": 1.5}, "pages: 1.5 is not an integer."),
        ({"title": {"a": 1}}, "title: an object is not a value of this field."),
        ({"title": "x", "body": None}, "body: This field cannot be null."),
        (
            {"title": "x", "published": "someday"},
            "published: “someday” value has an invalid date format. It must be in YYYY-MM-DD format.",
        ),
        ({"title": "x" * 201}, "title: Ensure this value has at most 200 characters (it has 201)."),
        ({"title": "x", "author": 5}, "author: a document id is a string, got a number."),
        ({"title": "x", "author": "999999"}, "author: author instance with id 999999 is not a valid choice."),
        ({"title": "x", "tags": "1"}, "tags: a list of document ids (strings) was expected, got a string."),
        ({"title": "x", "tags": ["999999"]}, "tags: testapp.tag instance with id 999999 does not exist."),
        ({"title": "x", "no_such": 1}, "no_such: not a field clients may write in testapp.book documents."),
        (
            {"title": "x", "author_id": 1},
            "author_id: not a field clients may write in testapp.book documents.",
        ),
        ({"title": "x", "id": 1}, "id: not a field clients may write in testapp.book documents."),
    ],
    ids=lambda value: str(value)[:40],
)
@pytest.mark.django_db
def test_insert_of_a_bad_value_or_unknown_field_is_400_naming_the_field_and_writes_nothing(
    editor: Any, author: models.Author, doc: dict[str, Any], reason: str
) -> None:
    error = refusal(BookCollection, "insert", {"author": str(author.pk), **doc}, user=editor)

    assert (error.error, error.reason) == (400, reason)
    assert error.details == {reason.split(":")[0]: [reason.split(": ", 1)[1]]}
    assert not models.Book.objects.exists()


@pytest.mark.django_db
def test_insert_without_a_required_field_is_400_naming_it(editor: Any) -> None:
    error = refusal(BookCollection, "insert", {"title": "x"}, user=editor)

    assert (error.error, error.reason) == (400, "author: This field cannot be null.")


@pytest.mark.django_db
def test_fields_the_collection_does_not_publish_are_not_writable(editor: Any, author: models.Author) -> None:
    class Books(BookCollection):
        exclude = ("pages",)

    error = refusal(Books, "insert", {"title": "x", "author": str(author.pk), "pages": 5}, user=editor)

    assert error.reason == "pages: not a field clients may write in testapp.book documents."


@pytest.mark.django_db
def test_a_field_that_is_not_editable_is_writable_only_when_named_in_writable_fields(
    editor: Any, author: models.Author
) -> None:
    """A BinaryField is not editable unless it says so."""
    doc = {"title": "x", "author": str(author.pk), "cover": b"\x00\x01"}
    assert refusal(BookCollection, "insert", doc, user=editor).reason == (
        "cover: not a field clients may write in testapp.book documents."
    )

    class Books(BookCollection):
        writable_fields = ("title", "author", "cover")

    write(Books, "insert", doc, user=editor)
    assert bytes(models.Book.objects.get().cover) == b"\x00\x01"
    assert refusal(Books, "insert", {**doc, "pages": 3}, user=editor).reason == (
        "pages: not a field clients may write in testapp.book documents."
    )


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ([["not", "an", "object"]], "a document is an object, got an array"),
        ([], "missing a required argument"),
    ],
)
@pytest.mark.django_db
def test_insert_params_of_the_wrong_kind_are_400_match_failed(
    editor: Any, params: list, problem: str
) -> None:
    error = refusal(BookCollection, "insert", *params, user=editor)

    assert (error.error, error.reason) == (400, "Match failed")
    assert problem in error.details


# --- update (M-2, M-3) ---------------------------------------------------------------


@pytest.mark.django_db
def test_update_by_id_or_bare_id_sets_fields_and_counts_one(editor: Any, book: models.Book) -> None:
    new_author = models.Author.objects.create(name="Terry", email="terry@example.com")

    assert (
        write(BookCollection, "update", {"_id": str(book.pk)}, {"$set": {"title": "Uno"}}, {}, user=editor)
        == 1
    )
    assert (
        write(
            BookCollection, "updateAsync", str(book.pk), {"$set": {"author": str(new_author.pk)}}, user=editor
        )
        == 1
    )

    book.refresh_from_db()
    assert (book.title, book.author) == ("Uno", new_author)


@pytest.mark.parametrize(
    ("before", "modifier", "after"),
    [
        ({"price": decimal.Decimal("3.00")}, {"$unset": {"price": ""}}, {"price": None}),
        ({"body": "text"}, {"$unset": {"body": 1}}, {"body": ""}),
        ({"pages": 100}, {"$unset": {"pages": True}}, {"pages": 0}),
        ({"pages": 100}, {"$inc": {"pages": 5}}, {"pages": 105}),
        ({"pages": 100}, {"$inc": {"pages": -100}}, {"pages": 0}),
        ({"price": decimal.Decimal("1.10")}, {"$inc": {"price": 0.2}}, {"price": decimal.Decimal("1.30")}),
        ({"pages": 0b1100}, {"$bit": {"pages": {"and": 0b1010}}}, {"pages": 0b1000}),
        ({"pages": 0b1100}, {"$bit": {"pages": {"or": 0b0011, "xor": 0b0001}}}, {"pages": 0b1110}),
        (
            {"pages": 1},
            {"$set": {"title": "T", "published": "2020-01-02"}},
            {"title": "T", "published": dt.date(2020, 1, 2)},
        ),
    ],
    ids=lambda value: str(value)[:50],
)
@pytest.mark.django_db
def test_update_operators_on_columns(
    editor: Any, book: models.Book, before: dict[str, Any], modifier: dict[str, Any], after: dict[str, Any]
) -> None:
    """M-3: $unset is None for a nullable field, else the field's default."""
    models.Book.objects.filter(pk=book.pk).update(**before)

    assert write(BookCollection, "update", str(book.pk), modifier, user=editor) == 1

    assert models.Book.objects.filter(pk=book.pk).values(*after).get() == after


@pytest.mark.parametrize(
    ("held", "operator", "argument", "after"),
    [
        ([0], "$push", 1, [0, 1]),
        ([0], "$push", {"$each": [2, 1]}, [0, 2, 1]),
        ([0], "$push", 0, [0]),  # a set: pushing what it holds changes nothing
        ([0], "$addToSet", {"$each": [0, 1]}, [0, 1]),
        ([], "$pushAll", [1, 2], [1, 2]),
        ([0, 1, 2], "$pull", 1, [0, 2]),
        ([0, 1, 2], "$pull", {"$in": [0, 2]}, [1]),
        ([0, 1, 2], "$pullAll", [2, 1], [0]),
        ([0, 1], "$set", [2], [2]),
        ([0, 1], "$unset", "", []),
    ],
    ids=str,
)
@pytest.mark.django_db
def test_update_operators_on_many_to_many_id_lists(
    editor: Any,
    book: models.Book,
    tags: list[models.Tag],
    held: list[int],
    operator: str,
    argument: Any,
    after: list[int],
) -> None:
    """Tags are named by their index in `tags` here, by document id in the modifier."""
    book.tags.add(*[tags[i] for i in held])
    modifier = {operator: {"tags": _tag_ids(argument, tags)}}

    assert write(BookCollection, "update", str(book.pk), modifier, user=editor) == 1

    assert sorted(published_tags(book)) == sorted(ids(*[tags[i] for i in after]))


@pytest.mark.django_db
def test_a_pushed_id_comes_last_in_the_published_list(
    editor: Any, book: models.Book, tags: list[models.Tag]
) -> None:
    """Ids pushed by one operator come in the database's order (Django's m2m add() takes a set)."""
    book.tags.add(tags[2])

    write(BookCollection, "update", str(book.pk), {"$push": {"tags": ids(tags[0])[0]}}, user=editor)

    assert published_tags(book) == ids(tags[2], tags[0])


def _tag_ids(argument: Any, tags: list[models.Tag]) -> Any:
    if isinstance(argument, dict):
        return {key: _tag_ids(value, tags) for key, value in argument.items()}
    if isinstance(argument, list):
        return ids(*[tags[i] for i in argument])
    return argument if isinstance(argument, str) else ids(tags[argument])[0]


def published_tags(book: models.Book) -> list[str]:
    """The book's tag ids in the order its document lists them."""
    field = models.Book._meta.get_field("tags")
    return many_to_many_ids(models.Book, field, [book.pk])[book.pk]  # type: ignore[arg-type]


@pytest.mark.parametrize(("end", "kept"), [(1, [0, 1]), (-1, [1, 2])])
@pytest.mark.django_db
def test_pop_removes_the_last_or_the_first_id_as_published(
    editor: Any, book: models.Book, tags: list[models.Tag], end: int, kept: list[int]
) -> None:
    for tag in tags:  # one at a time: add() takes a set, whose order depends on the ids
        book.tags.add(tag)

    assert write(BookCollection, "update", str(book.pk), {"$pop": {"tags": end}}, user=editor) == 1

    assert published_tags(book) == ids(*[tags[i] for i in kept])


@pytest.mark.django_db
def test_pop_takes_one_or_minus_one(editor: Any, book: models.Book) -> None:
    error = refusal(BookCollection, "update", str(book.pk), {"$pop": {"tags": 2}}, user=editor)

    assert error.reason == "tags: $pop takes 1 (the last id) or -1 (the first)."


@pytest.mark.parametrize(
    "selector",
    [{}, {"title": "One"}, {"_id": {"$in": ["1"]}}, {"_id": "1", "title": "One"}, None, ["1"], True],
    ids=str,
)
@pytest.mark.parametrize("operation", ["update", "updateAsync", "remove", "removeAsync"])
@pytest.mark.django_db
def test_a_selector_that_is_not_one_id_is_403_naming_the_method(
    editor: Any, selector: Any, operation: str
) -> None:
    """M-2, with Meteor's text (allow-deny.js names the method called)."""
    params = [selector, {"$set": {"title": "x"}}] if operation.startswith("update") else [selector]

    error = refusal(BookCollection, operation, *params, user=editor)

    assert (error.error, error.reason) == (403, NOT_BY_ID.format(operation))


@pytest.mark.parametrize(
    "selector", ["999999", "not-a-number", {"_id": "999999"}, "the book's id as a number"]
)
@pytest.mark.django_db
def test_update_and_remove_of_a_missing_document_count_zero(
    editor: Any, book: models.Book, selector: Any
) -> None:
    """M-3: no error. A number is an id to Meteor, but no document's id here is a number."""
    if selector == "the book's id as a number":
        selector = book.pk
    assert write(BookCollection, "update", selector, {"$set": {"title": "x"}}, user=editor) == 0
    assert write(BookCollection, "remove", selector, user=editor) == 0
    assert models.Book.objects.get().title == "One"


@pytest.mark.parametrize(
    ("modifier", "options", "reason"),
    [
        ({"title": "x"}, None, REPLACEMENT),
        ({}, None, REPLACEMENT),
        ({"$set": {"title": "x"}, "pages": 3}, None, REPLACEMENT),
        (
            {"$rename": {"title": "name"}, "pages": 3},
            None,
            "Access denied. Operator $rename not allowed in a restricted collection.",
        ),
        ({"pages": 3, "$rename": {"title": "name"}}, None, REPLACEMENT),
        (
            {"$rename": {"title": "name"}},
            None,
            "Access denied. Operator $rename not allowed in a restricted collection.",
        ),
        (
            {"$set": {"title": "x"}, "$mul": {"pages": 2}},
            None,
            "Access denied. Operator $mul not allowed in a restricted collection.",
        ),
        ({"$set": {"title": "x"}}, {"upsert": True, "insertedId": "abc"}, UPSERT),
    ],
    ids=str,
)
@pytest.mark.django_db
def test_replacements_other_operators_and_upserts_are_403_with_meteors_texts(
    editor: Any, book: models.Book, modifier: dict[str, Any], options: Any, reason: str
) -> None:
    """M-3."""
    error = refusal(BookCollection, "update", str(book.pk), modifier, options, user=editor)

    assert (error.error, error.reason) == (403, reason)
    book.refresh_from_db()
    assert book.title == "One"


@pytest.mark.parametrize(
    ("modifier", "reason"),
    [
        ({"$set": {"pages": "many"}}, "pages: “many” value must be an integer."),
        ({"$set": {"author": None}}, "author: This field cannot be null."),
        ({"$set": {"title": ""}}, "title: This field cannot be blank."),
        ({"$set": {"_id": "x"}}, "_id: a document's id cannot be changed."),
        (
            {"$set": {"author.name": "x"}},
            "author.name: dotted paths are not supported: set the whole 'author' field.",
        ),
        ({"$set": {"pages": 1}, "$inc": {"pages": 1}}, "pages: changed by more than one operator."),
        ({"$inc": {"title": 1}}, "title: $inc applies to number fields only."),
        ({"$inc": {"pages": "1"}}, "pages: $inc takes a number, got a string."),
        ({"$inc": {"price": 1}}, "price: $inc cannot change a null value."),
        ({"$bit": {"pages": {"not": 1}}}, 'pages: $bit takes {"and" | "or" | "xor": an integer}.'),
        ({"$push": {"title": "x"}}, "title: $push applies to many-to-many lists only."),
        ({"$inc": {"tags": 1}}, "tags: $inc does not apply to a many-to-many list."),
        (
            {"$push": {"tags": {"$each": ["1"], "$slice": 2}}},
            "tags: $push takes an id or {'$each': [ids]}, got ['$each', '$slice'].",
        ),
        ({"$push": {"tags": "999999"}}, "tags: testapp.tag instance with id 999999 does not exist."),
        ({"$pull": {"tags": 5}}, "tags: a list of document ids (strings) was expected, got an array."),
        ({"$set": {"hidden": 1}}, "hidden: not a field clients may write in testapp.book documents."),
    ],
    ids=lambda value: str(value)[:50],
)
@pytest.mark.django_db
def test_update_of_a_bad_value_or_field_is_400_naming_it_and_changes_nothing(
    editor: Any, book: models.Book, modifier: dict[str, Any], reason: str
) -> None:
    error = refusal(BookCollection, "update", str(book.pk), modifier, user=editor)

    assert (error.error, error.reason) == (400, reason)
    book.refresh_from_db()
    assert (book.title, book.pages) == ("One", 100)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        (["1", "not a modifier"], "a modifier is an object, got a string"),
        (["1", {"$set": {"title": "x"}}, "options"], "update options are an object, got a string"),
        (["1"], "missing a required argument: 'modifier'"),
    ],
)
@pytest.mark.django_db
def test_update_params_of_the_wrong_kind_are_400_match_failed(
    editor: Any, params: list, problem: str
) -> None:
    error = refusal(BookCollection, "update", *params, user=editor)

    assert (error.error, error.reason, error.details) == (400, "Match failed", problem)


@pytest.mark.django_db
def test_an_operator_on_something_other_than_fields_is_400(editor: Any, book: models.Book) -> None:
    error = refusal(BookCollection, "update", str(book.pk), {"$set": "title"}, user=editor)

    assert (error.error, error.reason) == (400, "$set takes an object of fields, got a string")


@pytest.mark.django_db
def test_a_unique_conflict_is_409(editor: Any) -> None:
    """M-3: database constraint errors are 409, as Meteor maps a duplicate key."""

    class Authors(Collection):
        model = models.Author
        client_writes = ("update",)
        allow_by_model_permission = False

        @classmethod
        def allow_update(cls, user: Any, instance: Any, field_names: list[str], modifier: Any) -> bool:
            return True

    models.Author.objects.create(name="A", email="a@example.com")
    other = models.Author.objects.create(name="B", email="b@example.com")

    error = refusal(Authors, "update", str(other.pk), {"$set": {"email": "a@example.com"}})

    assert error.error == 409 and "testapp_author_email_key" in error.reason
    other.refresh_from_db()
    assert other.email == "b@example.com"


# --- remove (M-2) --------------------------------------------------------------------


@pytest.mark.django_db
def test_remove_deletes_the_row_and_counts_one(editor: Any, book: models.Book) -> None:
    assert write(BookCollection, "remove", {"_id": str(book.pk)}, user=editor) == 1
    assert not models.Book.objects.exists()


@pytest.mark.django_db
def test_remove_takes_one_selector(editor: Any, book: models.Book) -> None:
    error = refusal(BookCollection, "remove", str(book.pk), {}, user=editor)

    assert (error.error, error.reason) == (400, "Match failed")
    assert models.Book.objects.exists()


# --- who may write (M-3) -------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_callers_are_refused_and_nothing_is_written(
    book: models.Book, author: models.Author
) -> None:
    assert refusal(BookCollection, "insert", {"title": "x", "author": str(author.pk)}) == MeteorError(
        403, "Access denied"
    )
    assert refusal(BookCollection, "update", str(book.pk), {"$set": {"title": "x"}}) == MeteorError(
        403, "Access denied"
    )
    assert refusal(BookCollection, "remove", str(book.pk)) == MeteorError(403, "Access denied")

    assert list(models.Book.objects.values_list("title", flat=True)) == ["One"]


@pytest.mark.parametrize("permission", ["add_book", "change_book", "delete_book"])
@pytest.mark.django_db
def test_each_operation_takes_its_own_model_permission(book: models.Book, permission: str) -> None:
    user = make_user(permission)
    calls = [
        ("insert", "add_book", [{"title": "x", "author": str(book.author_id)}]),
        ("update", "change_book", [str(book.pk), {"$set": {"title": "x"}}]),
        ("remove", "delete_book", [str(book.pk)]),
    ]
    for operation, needed, params in calls:
        if needed == permission:
            assert write(BookCollection, operation, *params, user=user)
        else:
            assert refusal(BookCollection, operation, *params, user=user).reason == "Access denied"


@pytest.mark.django_db
def test_a_superuser_has_every_permission_and_an_inactive_user_none(book: models.Book) -> None:
    boss = get_user_model().objects.create_superuser("boss")
    retired = make_user("change_book", is_active=False)

    assert (
        refusal(BookCollection, "update", str(book.pk), {"$set": {"title": "x"}}, user=retired).reason
        == "Access denied"
    )
    assert write(BookCollection, "update", str(book.pk), {"$set": {"title": "x"}}, user=boss) == 1


class RecordingTasks(TaskCollection):
    """Tasks whose rules record what they were given, and answer as `answers` says."""

    answers: dict[str, bool] = {}
    calls: list[tuple[Any, ...]] = []

    @classmethod
    def _answer(cls, rule: str, *args: Any) -> bool:
        cls.calls.append((rule, *args))
        return cls.answers.get(rule, False)

    @classmethod
    def allow_update(cls, user: Any, instance: Any, field_names: list[str], modifier: Any) -> bool:
        return cls._answer("allow_update", user, instance.text, field_names, modifier)

    @classmethod
    def deny_update(cls, user: Any, instance: Any, field_names: list[str], modifier: Any) -> bool:
        return cls._answer("deny_update", user, instance.text, field_names, modifier)

    @classmethod
    def allow_insert(cls, user: Any, doc: dict[str, Any]) -> bool:
        return cls._answer("allow_insert", user, doc)

    @classmethod
    def allow_remove(cls, user: Any, instance: Any) -> bool:
        return cls._answer("allow_remove", user, instance.text)

    @classmethod
    def deny_remove(cls, user: Any, instance: Any) -> bool:
        return cls._answer("deny_remove", user, instance.text)


@pytest.fixture
def recording() -> type[RecordingTasks]:
    RecordingTasks.answers = {}
    RecordingTasks.calls = []
    return RecordingTasks


@pytest.mark.django_db
def test_rules_get_the_user_the_row_before_the_change_the_field_names_and_the_modifier(
    recording: type[RecordingTasks],
) -> None:
    task = models.Task.objects.create(text="before")
    user = make_user()
    recording.answers = {"allow_update": True}
    modifier = {"$set": {"text": "after"}, "$unset": {}}

    assert write(recording, "update", task.pk, modifier, user=user) == 1

    assert recording.calls == [
        ("deny_update", user, "before", ["text"], modifier),
        ("allow_update", user, "before", ["text"], modifier),
    ]
    assert models.Task.objects.get().text == "after"


@pytest.mark.django_db
def test_rules_get_an_anonymous_user_and_the_document_as_sent(recording: type[RecordingTasks]) -> None:
    """No `_id` when the client chose none (as Meteor: rules can tell a chosen id from a drawn one)."""
    recording.answers = {"allow_insert": True}

    assert write(recording, "insert", {"text": "hi"}) == TASKS_IDS[0]

    [(rule, user, doc)] = recording.calls
    assert (rule, doc) == ("allow_insert", {"text": "hi"})
    assert isinstance(user, AnonymousUser)


@pytest.mark.parametrize(
    ("permission", "allow", "deny", "allowed"),
    [
        (False, False, False, False),
        (False, True, False, True),
        (True, False, False, True),
        (True, True, True, False),
        (True, False, True, False),
        (False, True, True, False),
    ],
)
@pytest.mark.django_db
def test_any_allow_rule_lets_a_write_through_and_any_deny_rule_vetoes_it(
    recording: type[RecordingTasks], permission: bool, allow: bool, deny: bool, allowed: bool
) -> None:
    """M-3: the model permission is one allow rule."""
    task = models.Task.objects.create(text="t")
    user = make_user(*(["delete_task"] if permission else []))
    recording.answers = {"allow_remove": allow, "deny_remove": deny}

    if allowed:
        assert write(recording, "remove", task.pk, user=user) == 1
    else:
        assert refusal(recording, "remove", task.pk, user=user) == MeteorError(403, "Access denied")
    assert models.Task.objects.exists() is not allowed


@pytest.mark.django_db
def test_a_user_no_longer_active_is_anonymous_to_the_rules() -> None:
    """As Django's authentication: TaskCollection lets anyone logged in insert."""
    retired = make_user(is_active=False)

    assert refusal(TaskCollection, "insert", {"text": "x"}, user=retired).reason == "Access denied"
    assert write(TaskCollection, "insert", {"text": "x"}, user=make_user()) == TASKS_IDS[0]


@pytest.mark.django_db
def test_a_deny_rule_vetoes_even_a_superuser() -> None:
    """tests/testapp/ddp.py: a task marked done stays done."""
    task = models.Task.objects.create(text="ship it (done)")
    boss = get_user_model().objects.create_superuser("boss")

    assert (
        refusal(TaskCollection, "update", task.pk, {"$set": {"text": "undone"}}, user=boss).reason
        == "Access denied"
    )
    assert write(TaskCollection, "remove", task.pk, user=boss) == 1


@pytest.mark.django_db
def test_without_model_permissions_an_operation_with_no_allow_rule_is_403_naming_the_method() -> None:
    """M-3; LabelCollection lets its rules alone decide, and has none for remove."""
    label = models.Label.objects.create(name="x")
    boss = get_user_model().objects.create_superuser("boss")

    for operation in ("remove", "removeAsync"):
        error = refusal(LabelCollection, operation, label.pk, user=boss)
        assert (error.error, error.reason) == (403, NO_ALLOW_RULES.format(operation))
    assert write(LabelCollection, "insert", {"name": "y"}, user=make_user()) == (
        RandomStreams(SEED).stream("/collection/testapp.label").id()
    )
    assert refusal(LabelCollection, "insert", {"name": "z"}).reason == "Access denied"


@pytest.mark.django_db
def test_the_form_of_a_write_is_refused_before_the_rules_and_a_missing_row_counts_zero_for_anyone(
    recording: type[RecordingTasks],
) -> None:
    """As Meteor: 403 for the selector or the modifier first, then 0 for no row, then the rules."""
    assert refusal(recording, "update", {}, {"$set": {"text": "x"}}).reason == NOT_BY_ID.format("update")
    assert refusal(recording, "update", "someId", {"text": "x"}).reason == REPLACEMENT
    assert write(recording, "update", "someId", {"$set": {"text": "x"}}) == 0
    assert recording.calls == []
