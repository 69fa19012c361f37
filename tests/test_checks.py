"""dddp.checks and dddp.publication_checks: the database engine, DDDP_* settings, ddp.py classes."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import pytest
from django.core import checks
from django.db import models as django_models
from django.db.models import F
from django.test import override_settings
from django.test.utils import isolate_apps

from dddp.api import Collection, Publication, Registry
from dddp.checks import check_database_is_postgresql, check_dddp_settings, registry_messages
from dddp.publication_checks import compile_problem
from tests.testapp import models


def dddp_messages() -> list[checks.CheckMessage]:
    """What every registered check says about dddp (what `manage.py check` would print)."""
    return [m for m in checks.run_checks() if (m.id or "").startswith("dddp.")]


@contextmanager
def default_engine(engine: str) -> Iterator[None]:
    """DATABASES['default'] with another ENGINE, for the check to read (no connection is made)."""
    with warnings.catch_warnings():
        # Django warns that overriding DATABASES is unusual; the check only reads it.
        warnings.filterwarnings("ignore", "Overriding setting DATABASES", UserWarning)
        with override_settings(DATABASES={"default": {"ENGINE": engine, "NAME": "x"}}):
            yield


def test_default_configuration_gives_no_dddp_messages() -> None:
    assert dddp_messages() == []


# --- the database engine ---------------------------------------------------------------


@pytest.mark.parametrize("engine", ["django.db.backends.sqlite3", "django.db.backends.mysql", ""])
def test_a_database_that_is_not_postgresql_is_e001_with_a_hint(engine: str) -> None:
    with default_engine(engine):
        (error,) = check_database_is_postgresql()
        assert error in dddp_messages()  # registered, so `manage.py check` reports it

    assert error.id == "dddp.E001"
    assert error.level == checks.ERROR
    assert repr(engine) in error.msg
    assert error.hint == "Set DATABASES['default']['ENGINE'] to 'django.db.backends.postgresql'."


def test_postgresql_engine_passes() -> None:
    with default_engine("django.db.backends.postgresql"):
        assert check_database_is_postgresql() == []


def test_postgis_engine_is_postgresql_too() -> None:
    """GeoDjango's PostGIS backend is PostgreSQL, with NOTIFY/LISTEN: no E001."""
    with default_engine("django.contrib.gis.db.backends.postgis"):
        assert check_database_is_postgresql() == []


# --- DDDP_* settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "default"),
    [
        ("MAX_MESSAGE_SIZE", -1, "1048576"),
        ("MAX_MESSAGE_SIZE", 0, "1048576"),
        ("MAX_MESSAGE_SIZE", 1.5, "1048576"),  # a count of bytes is a whole number
        ("MAX_SEND_QUEUE_BYTES", "16MB", "16777216"),
        ("MAX_SUBSCRIPTIONS", 0, "1000"),
        ("METHOD_WORKERS", 0, "8"),
        ("METHOD_WORKERS", True, "8"),
        ("METHOD_WORKERS", None, "8"),
        ("HEARTBEAT_INTERVAL", -1, "15.0"),
        ("HEARTBEAT_TIMEOUT", 0, "15.0"),
        ("HEARTBEAT_TIMEOUT", "15", "15.0"),
        ("SHUTDOWN_TIMEOUT", False, "10.0"),
    ],
)
def test_a_bad_dddp_setting_is_e002_with_a_hint_naming_the_default(
    name: str, value: Any, default: str
) -> None:
    with override_settings(**{f"DDDP_{name}": value}):
        messages = dddp_messages()

    assert [m.id for m in messages] == ["dddp.E002"]
    (error,) = messages
    assert error.level == checks.ERROR
    assert f"DDDP_{name}" in error.msg
    assert repr(value) in error.msg
    assert f"the default is {default}" in error.hint


@pytest.mark.parametrize("value", ["sockjs", "/sockjs/", "", 5])
def test_the_sockjs_prefix_must_be_a_path(value: Any) -> None:
    with override_settings(DDDP_SOCKJS_PREFIX=value):
        (error,) = check_dddp_settings()
    assert error.id == "dddp.E002"
    assert error.msg.startswith("DDDP_SOCKJS_PREFIX must be a path such as")


@pytest.mark.parametrize("value", ["", "   ", 5, None])
def test_a_text_setting_must_be_a_non_empty_string(value: Any) -> None:
    with override_settings(DDDP_SOCKJS_URL=value):
        (error,) = check_dddp_settings()
    assert error.id == "dddp.E002"
    assert error.msg == f"DDDP_SOCKJS_URL must be a non-empty string, got {value!r}."


@pytest.mark.parametrize(
    "value",
    [
        "https://app.example",  # a string, not a list of them
        ["app.example"],  # no scheme: Django's CSRF_TRUSTED_ORIGINS needs one too
        ["https://app.example/"],  # an origin has no path
        ["https://*"],
        ["https://app.*.example"],
        [5],
    ],
)
def test_allowed_origins_must_be_a_list_of_origins(value: Any) -> None:
    with override_settings(DDDP_ALLOWED_ORIGINS=value):
        (error,) = check_dddp_settings()
    assert error.id == "dddp.E002"
    assert error.msg.startswith("DDDP_ALLOWED_ORIGINS must be a list of origins such as")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALLOWED_ORIGINS", ["https://app.example", "http://localhost:3000", "https://*.example.com"]),
        ("ALLOWED_ORIGINS", ("*",)),
        ("ALLOWED_ORIGINS", ["null"]),
        ("HEARTBEAT_INTERVAL", 0),  # 0 turns heartbeats off
        ("HEARTBEAT_INTERVAL", 0.0),
        ("HEARTBEAT_TIMEOUT", 30),  # a whole number of seconds is fine
        ("METHOD_WORKERS", 1),
        ("MAX_MESSAGE_SIZE", 65536),
        ("SHUTDOWN_TIMEOUT", 0.5),
        ("VERIFY_EMAIL_URL", ""),  # the mail gives the token
        ("VERIFY_EMAIL_URL", "https://app.example.com/#/verify-email/{token}"),
        ("ACCOUNTS_EMAIL_VERIFIED_FIELD", ""),  # no field: no verifyEmail
    ],
)
def test_good_dddp_settings_pass(name: str, value: Any) -> None:
    with override_settings(**{f"DDDP_{name}": value}):
        assert check_dddp_settings() == []


def test_each_bad_setting_gets_its_own_error() -> None:
    with override_settings(DDDP_METHOD_WORKERS=0, DDDP_HEARTBEAT_TIMEOUT=-5):
        errors = check_dddp_settings()

    assert sorted(e.msg.split()[0] for e in errors) == ["DDDP_HEARTBEAT_TIMEOUT", "DDDP_METHOD_WORKERS"]


def test_an_unknown_dddp_setting_is_w001_listing_the_known_ones() -> None:
    with override_settings(DDDP_FOO=1):
        messages = dddp_messages()

    (warning,) = messages
    assert warning.id == "dddp.W001"
    assert warning.level == checks.WARNING
    assert "DDDP_FOO" in warning.msg
    assert "DDDP_MAX_MESSAGE_SIZE" in warning.hint
    assert "DDDP_HEARTBEAT_INTERVAL" in warning.hint


# --- where the checks run ----------------------------------------------------------------


def test_e001_is_among_the_checks_django_runs_by_default() -> None:
    """`manage.py check` and the dddp server run untagged checks; Django documents
    `database`-tagged ones as run only by `migrate` and `check --database`."""
    default_checks = [
        check for check in checks.registry.registry.get_checks() if checks.Tags.database not in check.tags
    ]
    with default_engine("django.db.backends.sqlite3"):
        found = [m.id for check in default_checks for m in check(app_configs=None, databases=None)]
        assert "dddp.E001" in found
        assert "dddp.E001" in [m.id for m in checks.run_checks()]  # as `manage.py check` runs them


def test_the_registry_checks_are_registered_and_read_the_global_api(monkeypatch: pytest.MonkeyPatch) -> None:
    class Lost(Publication):
        pass

    broken = Registry()
    broken.register([Lost])
    monkeypatch.setattr("dddp.api.API", broken)

    assert [m.id for m in dddp_messages()] == ["dddp.E005"]


# --- collections -------------------------------------------------------------------------


def registry_of(*items: type) -> Registry:
    """A registry of the test's own, holding exactly these classes.

    Collections are put in without `register`, which would connect their
    signals for the rest of the run (and refuses some of the mistakes checked here).
    """
    registry = Registry()
    for item in items:
        if issubclass(item, Collection):
            registry.collections[item.__name__] = item
            if inspect.isclass(item.model):
                registry.collections_by_model[item.model] = item
        else:
            registry.register([item])
    return registry


def problems(*items: type) -> list[checks.CheckMessage]:
    return registry_messages(registry_of(*items))


def ids(*items: type) -> list[str]:
    return [m.id for m in problems(*items)]


class NoteCollection(Collection):
    model = models.Note


class BookCollection(Collection):
    model = models.Book


class AuthorCollection(Collection):
    model = models.Author


class TagCollection(Collection):
    model = models.Tag


def test_well_made_collections_and_publications_pass() -> None:
    class Shaped(Collection):
        model = models.Book
        fields = ["title", "author", "tags"]  # a foreign key and a many-to-many by name
        exclude = ("body",)

    class Everything(Publication):
        queries = [
            models.Book.objects.filter(author__email="a@example.com").order_by("title"),
            models.Book.objects.filter(tags__name="red"),  # the m2m table is Book's: published
            models.Author.objects.only("name").select_related(None)[:10],
            models.Note.objects.none(),
        ]

    class ByEmail(Publication):
        def get_queries(self, email):
            return []

    class ByStaticMethod(Publication):
        @staticmethod
        def get_queries(email):
            return []

    assert problems(Shaped, AuthorCollection, TagCollection, NoteCollection, Everything, ByEmail) == []
    assert problems(ByStaticMethod) == []


def test_a_collection_whose_model_is_not_a_model_is_e003() -> None:
    class Wrong(Collection):
        model = "testapp.Note"  # type: ignore[assignment]

    (error,) = problems(Wrong)

    assert error.id == "dddp.E003"
    assert error.level == checks.ERROR
    assert error.msg == "Wrong.model is 'testapp.Note', not a Django model class."
    assert "model = models.Book" in error.hint
    assert error.obj == f"{__name__}.test_a_collection_whose_model_is_not_a_model_is_e003.<locals>.Wrong"


def test_a_collection_of_a_proxy_model_is_e003_naming_the_concrete_model() -> None:
    class Pinned(Collection):
        model = models.PinnedNote

    (error,) = problems(Pinned)

    assert error.id == "dddp.E003"
    assert "testapp.PinnedNote, a proxy model" in error.msg
    assert error.hint.startswith("Set model = Note:")


def test_a_collection_of_an_abstract_model_is_e003() -> None:
    class Stamped(django_models.Model):
        at = django_models.DateTimeField()

        class Meta:
            abstract = True
            app_label = "testapp"

    class Stamps(Collection):
        model = Stamped

    (error,) = problems(Stamps)

    assert error.id == "dddp.E003"
    assert "an abstract model" in error.msg


@pytest.mark.parametrize(
    "key",
    [
        lambda: django_models.DateField(primary_key=True),
        lambda: django_models.DecimalField(primary_key=True, max_digits=5, decimal_places=2),
        lambda: django_models.BinaryField(primary_key=True),
        lambda: django_models.DateTimeField(primary_key=True),
    ],
    ids=["date", "decimal", "binary", "datetime"],
)
def test_a_collection_of_a_model_whose_key_makes_no_document_id_is_e011(key: Any) -> None:
    """A document id is an integer, UUID or string key as a string (D-55); others fail every read."""
    with isolate_apps("tests.testapp"):  # a model of the test's own, in no global registry
        meta = type("Meta", (), {"app_label": "testapp"})
        Day = type("Day", (django_models.Model,), {"__module__": __name__, "Meta": meta, "day": key()})

    class Days(Collection):
        model = Day

    (error,) = problems(Days)

    assert error.id == "dddp.E011"
    assert error.msg.startswith(f"Days.model is testapp.Day, whose primary key is a {type(key()).__name__}")


def test_a_one_to_one_key_is_the_key_it_points_to() -> None:
    with isolate_apps("tests.testapp"):
        meta = type("Meta", (), {"app_label": "testapp"})
        Day = type(
            "Day", (django_models.Model,), {"__module__": __name__, "Meta": meta, "day": key_of_dates()}
        )
        day = django_models.OneToOneField(Day, primary_key=True, on_delete=django_models.CASCADE)
        Diary = type("Diary", (django_models.Model,), {"__module__": __name__, "Meta": meta, "day": day})

    class Diaries(Collection):
        model = Diary

    assert ids(Diaries) == ["dddp.E011"]


def key_of_dates() -> Any:
    return django_models.DateField(primary_key=True)


def test_keys_that_make_document_ids_pass_also_through_a_one_to_one_key() -> None:
    from tests.typesapp import models as types

    keyed = [models.Note, types.UuidKeyed, types.CharKeyed, types.CharKeyedProfile, models.DatedNote]
    collections = [type(f"{m.__name__}s", (Collection,), {"model": m}) for m in keyed]
    with isolate_apps("tests.testapp"):
        meta = type("Meta", (), {"app_label": "testapp"})
        fields = {
            "__module__": __name__,
            "Meta": meta,
            "address": django_models.GenericIPAddressField(primary_key=True),
        }
        Host = type("Host", (django_models.Model,), fields)  # its values are strings
    collections.append(type("Hosts", (Collection,), {"model": Host}))

    assert problems(*collections) == []


@pytest.mark.parametrize(
    ("fields", "exclude", "named", "hint"),
    [
        (["titel"], (), "'titel'", "Did you mean 'title'?"),
        (None, ["author_id"], "'author_id'", "Did you mean 'author'?"),
        (None, ["id"], "'id'", "The primary key is the document's id, not one of its fields."),
        (["title", "nothing_like_it"], (), "'nothing_like_it'", "Choices are: title, author, body,"),
    ],
)
def test_a_collection_naming_a_field_its_model_lacks_is_e004(
    fields: list[str] | None, exclude: list[str], named: str, hint: str
) -> None:
    class Books(Collection):
        model = models.Book

    Books.fields, Books.exclude = fields, exclude
    attribute = "fields" if fields else "exclude"

    (error,) = problems(Books)

    assert error.id == "dddp.E004"
    assert error.msg == f"Books.{attribute} names {named}, which is not a field of testapp.Book's documents."
    assert hint in error.hint


def test_fields_given_as_a_string_is_e004() -> None:
    """`name in "title"` would test substrings: "tit" would be published."""

    class Books(Collection):
        model = models.Book
        fields = "title"  # type: ignore[assignment]

    (error,) = problems(Books)

    assert error.id == "dddp.E004"
    assert error.msg == "Books.fields is 'title', not a list."
    assert error.hint == "Write fields = ['title', 'author']."


# --- how a publication gives its querysets ---------------------------------------------


def test_a_publication_with_neither_queries_nor_get_queries_is_e005() -> None:
    class Lost(Publication):
        pass

    (error,) = problems(Lost)

    assert error.id == "dddp.E005"
    assert error.msg == "Lost has neither `queries` nor a `get_queries()` method."
    assert (
        error.hint == "Set `queries = [...]` to a list of querysets, or define `get_queries(self, *params)`."
    )


@pytest.mark.parametrize("attribute", ["query", "querys", "queryset", "querysets", "Queries"])
def test_e005_hint_names_a_near_miss_attribute(attribute: str) -> None:
    Lost = type("Lost", (Publication,), {attribute: [models.Note.objects.all()]})

    (error,) = problems(Lost)

    assert error.id == "dddp.E005"
    assert error.hint == f"Did you mean `queries`? Lost defines `{attribute}`."


@pytest.mark.parametrize("method", ["get_query", "get_querys", "get_queryset", "get_querysets", "getQueries"])
def test_e005_hint_names_a_near_miss_method(method: str) -> None:
    def get_them(self, email):
        return []

    Lost = type("Lost", (Publication,), {method: get_them})

    (error,) = problems(Lost)

    assert error.id == "dddp.E005"
    assert error.hint == f"Did you mean `get_queries`? Lost defines `{method}`."


def test_a_publication_with_both_queries_and_get_queries_is_w003() -> None:
    class Both(Publication):
        queries = [models.Note.objects.all()]

        def get_queries(self, text):
            return [models.Note.objects.filter(text=text)]

    (warning,) = problems(NoteCollection, Both)

    assert warning.id == "dddp.W003"
    assert warning.level == checks.WARNING
    assert "Both has both `queries` and its own `get_queries()`" in warning.msg


@pytest.mark.parametrize(
    ("queries", "msg", "hint"),
    [
        (
            models.Note.objects.all(),
            "Static.queries is a queryset of testapp.Note, not a list of querysets.",
            "Put it in a list: queries = [...].",
        ),
        (
            [models.Note.objects.all(), models.Note.objects],
            "Static.queries[1] is <django.db.models.manager.Manager object at",
            "Give a queryset: Note.objects.all() (a manager is not one).",
        ),
        (
            [models.Note],
            "Static.queries[0] is <class 'tests.testapp.models.Note'>, not a queryset.",
            "Give a queryset: Note.objects.all() (a model class is not one).",
        ),
        (
            "AllNotes",
            "Static.queries is 'AllNotes', not a list of querysets.",
            "Give a list of querysets: queries = [...].",
        ),
    ],
    ids=["a queryset", "a manager", "a model", "a string"],
)
def test_queries_that_are_not_a_list_of_querysets_is_e006(queries: Any, msg: str, hint: str) -> None:
    """(This test has no database access: the message must not show a queryset's rows.)"""
    Static = type("Static", (Publication,), {"queries": queries})

    (error,) = problems(NoteCollection, Static)

    assert error.id == "dddp.E006"
    assert error.msg.startswith(msg)
    assert hint in error.hint


def test_get_queries_that_is_not_a_method_is_e007() -> None:
    class Static(Publication):
        get_queries = []  # type: ignore[assignment]

    (error,) = problems(Static)

    assert error.id == "dddp.E007"
    assert error.msg == "Static.get_queries is a list, not a method."
    assert error.hint == "Did you mean `queries = [...]`?"


def test_get_queries_without_self_is_e007() -> None:
    class NoSelf(Publication):
        def get_queries():  # type: ignore[override]
            return []

    (error,) = problems(NoSelf)

    assert error.id == "dddp.E007"
    assert error.msg == "NoSelf.get_queries() takes no `self`: the subscription's params would not fit."
    assert error.hint.startswith("Write `def get_queries(self, *params):`")


def test_async_get_queries_is_e007() -> None:
    class Async(Publication):
        async def get_queries(self, text):  # type: ignore[override]
            return []

    (error,) = problems(Async)

    assert error.id == "dddp.E007"
    assert "is async" in error.msg


# --- static querysets ----------------------------------------------------------------------


def test_a_static_queryset_of_a_model_without_a_collection_is_e008() -> None:
    class Tags(Publication):
        queries = [models.Note.objects.all(), models.Tag.objects.all()]

    (error,) = problems(NoteCollection, Tags)

    assert error.id == "dddp.E008"
    assert error.msg == "Tags.queries[1] is a queryset of testapp.Tag, which no Collection publishes."
    assert "a Collection subclass with model = Tag" in error.hint


def test_a_subclass_table_needs_its_own_collection_but_a_proxy_does_not() -> None:
    class Dated(Publication):
        queries = [models.DatedNote.objects.all()]

    class Pinned(Publication):
        queries = [models.PinnedNote.objects.all()]

    assert ids(NoteCollection, Dated) == ["dddp.E008"]
    assert ids(NoteCollection, Pinned) == []


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: models.Book.objects.order_by(F("titel")), "FieldError: Cannot resolve keyword 'titel'"),
        (lambda: models.Book.objects.distinct("titel"), "FieldError: Cannot resolve keyword 'titel'"),
        (lambda: models.Book.objects.extra(order_by=["titel"]), "FieldError: Cannot resolve keyword 'titel'"),
    ],
    ids=["order_by(F())", "distinct", "extra(order_by)"],
)
def test_a_static_queryset_whose_sql_does_not_compile_is_e009_quoting_django(make: Any, said: str) -> None:
    Broken = type("Broken", (Publication,), {"queries": [make()]})

    (error,) = problems(BookCollection, Broken)

    assert error.id == "dddp.E009"
    assert error.level == checks.ERROR
    assert error.msg.startswith(f"Broken.queries[0] does not compile: {said}")
    assert error.hint == "Fix the queryset: every subscription to the publication would fail with this error."


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: models.Book.objects.only("titel"), "FieldDoesNotExist: Book has no field named 'titel'"),
        (
            lambda: models.Book.objects.select_related("autor"),
            "FieldError: Invalid field name(s) given in select_related: 'autor'. Choices are: author",
        ),
        (
            lambda: models.Book.objects.defer("author__nme"),
            "FieldDoesNotExist: Author has no field named 'nme'",
        ),
    ],
    ids=["only", "select_related", "defer"],
)
def test_a_mistake_in_what_dddp_does_not_read_is_w004_quoting_django(make: Any, said: str) -> None:
    """dddp reads values_list() of every column, which drops only(), defer() and select_related()."""
    Broken = type("Broken", (Publication,), {"queries": [make()]})

    (warning,) = problems(BookCollection, AuthorCollection, Broken)

    assert warning.id == "dddp.W004"
    assert warning.level == checks.WARNING
    assert warning.msg == f"Broken.queries[0] does not compile as written: {said}"


def test_compiling_static_querysets_uses_no_database() -> None:
    """This test has no database access (pytest-django refuses it): any query would fail it."""
    queryset = models.Book.objects.filter(author__email="a@example.com", pages__gte=3).order_by("-title")

    assert compile_problem("Static.queries[0]", queryset) is None


def test_a_queryset_that_needs_a_connection_to_compile_is_skipped_rather_than_connect() -> None:
    from django.db import connection

    queryset = models.Book.objects.select_for_update()  # compiling asks the connection its autocommit
    with patch.object(connection, "connection", None), patch.object(connection, "connect") as connect:
        assert compile_problem("Static.queries[0]", queryset) is None
    connect.assert_not_called()


def test_a_union_is_e010() -> None:
    """Observing re-filters the queryset by the changed ids, which Django refuses after union()."""

    class Either(Publication):
        queries = [models.Note.objects.filter(text="a").union(models.Note.objects.filter(text="b"))]

    (error,) = problems(NoteCollection, Either)

    assert error.id == "dddp.E010"
    assert error.msg == "Either.queries[0] is a union() of querysets, which dddp cannot observe."
    assert "filter(Q(...) | Q(...))" in error.hint


def test_select_for_update_is_e010() -> None:
    class Locking(Publication):
        queries = [models.Note.objects.select_for_update()]

    (error,) = problems(NoteCollection, Locking)

    assert error.id == "dddp.E010"
    assert "select_for_update()" in error.msg


def test_a_static_queryset_filtering_through_an_unpublished_table_is_w002() -> None:
    class ByAuthor(Publication):
        queries = [models.Book.objects.filter(author__name="Ada")]

    (warning,) = problems(BookCollection, ByAuthor)

    assert warning.id == "dddp.W002"
    assert warning.level == checks.WARNING
    assert warning.msg == (
        "ByAuthor.queries[0] filters through table testapp_author, which no Collection publishes."
    )
    assert warning.hint == (
        "Its changes reach subscribers only when the publication's own rows change: "
        "register a Collection for testapp.Author to have them re-run the queryset."
    )


def test_a_many_to_many_table_is_published_by_the_collection_of_the_model_declaring_the_field() -> None:
    """Its changes are sent as changes of Book, which re-run a queryset joining only that table."""

    class Tagged(Publication):
        queries = [models.Book.objects.filter(tags__name="red")]

    class TagsOfBooks(Publication):
        queries = [models.Tag.objects.filter(books__title="Emma")]

    class TagsOfBook(Publication):
        queries = [models.Tag.objects.filter(books=1)]  # joins testapp_book_tags only

    assert ids(BookCollection, TagCollection, Tagged, TagsOfBooks, TagsOfBook) == []
    (warning,) = problems(TagCollection, TagsOfBook)  # Book is not published: its tags are not sent
    assert warning.msg == (
        "TagsOfBook.queries[0] filters through table testapp_book_tags, which no Collection publishes."
    )
    assert warning.hint.endswith(": register a Collection for testapp.Book to have them re-run the queryset.")


def test_app_configs_limit_the_checks_to_classes_of_those_apps() -> None:
    from django.apps import apps

    class Lost(Publication):
        pass

    registry = registry_of(Lost)

    assert [m.id for m in registry_messages(registry, [apps.get_app_config("testapp")])] == []
    assert [m.id for m in registry_messages(registry, None)] == ["dddp.E005"]


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("writer", "has no field named 'writer'"),
        ("title", "title is not a relation"),
        ("author", "leads to testapp.Author, not to auth.User"),
        (5, "not a lookup or a list of lookups"),
    ],
)
def test_a_user_rel_that_does_not_lead_to_the_user_model_is_e012(rule: Any, why: str) -> None:
    class Books(Collection):
        model = models.Book
        user_rel = rule

    (error,) = problems(Books)

    assert error.id == "dddp.E012"
    assert why in error.msg


def test_a_user_rel_through_relations_to_the_user_model_is_fine() -> None:
    from tests.accountsapp import ddp

    assert problems(ddp.Page) == [] and problems(ddp.Secret) == []


@pytest.mark.parametrize(
    ("name", "value"), [("PASSWORD_RESET_URL", "https://app.example/reset"), ("VERIFY_EMAIL_URL", 5)]
)
def test_a_mailed_link_needs_a_place_for_its_token(name: str, value: Any) -> None:
    with override_settings(**{f"DDDP_{name}": value}):
        (error,) = check_dddp_settings()
    assert error.msg == f'DDDP_{name} must be a URL with {{token}} in it, or "", got {value!r}.'
