"""dddp.api: collections, publications and methods, and the registry that names them."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from dddp.api import API, Collection, MeteorError, Method, Publication, PublicationError, Registry, method
from tests.testapp import models


@pytest.fixture
def registry() -> Registry:
    """A registry of this test's own: the global API stays as tests/testapp/ddp.py left it."""
    return Registry()


# --- collections ---------------------------------------------------------------------


def test_collection_name_defaults_to_app_label_dot_model_name(registry: Registry) -> None:
    class Notes(Collection):
        model = models.Note

    registry.register([Notes])

    assert Notes.collection_name() == "testapp.note"
    assert registry.collections == {"testapp.note": Notes}


def test_collection_name_attribute_overrides_the_default(registry: Registry) -> None:
    class Notes(Collection):
        model = models.Note
        name = "notes"

    registry.register([Notes])

    assert registry.collections == {"notes": Notes}


def test_collection_without_a_model_is_improperly_configured(registry: Registry) -> None:
    class Nothing(Collection):
        pass

    with pytest.raises(ImproperlyConfigured, match=r"Nothing\.model must be a Django model class"):
        registry.register([Nothing])
    assert registry.collections == {}


@pytest.mark.parametrize("not_a_model", ["testapp.Note", dict, models.Note.objects])
def test_collection_whose_model_is_not_a_django_model_class_is_improperly_configured(
    registry: Registry, not_a_model: object
) -> None:
    class Wrong(Collection):
        model = not_a_model  # type: ignore[assignment]

    with pytest.raises(ImproperlyConfigured, match="must be a Django model class"):
        registry.register([Wrong])


# --- publications --------------------------------------------------------------------


def test_publication_name_defaults_to_the_class_name(registry: Registry) -> None:
    class EveryNote(Publication):
        queries = [models.Note.objects.all()]

    registry.register([EveryNote])

    assert EveryNote.publication_name() == "EveryNote"
    assert registry.publications == {"EveryNote": EveryNote}


def test_publication_name_attribute_overrides_the_class_name(registry: Registry) -> None:
    class EveryNote(Publication):
        name = "notes.all"
        queries = [models.Note.objects.all()]

    registry.register([EveryNote])

    assert registry.publications == {"notes.all": EveryNote}


def test_publication_with_queries_yields_copies_of_those_querysets() -> None:
    class Hello(Publication):
        queries = [models.Note.objects.filter(text="hello"), models.Note.objects.filter(text="bye")]

    got = Hello().get_queries()

    assert [str(q.query) for q in got] == [str(q.query) for q in Hello.queries]
    assert all(mine is not theirs for mine, theirs in zip(got, Hello.queries, strict=True))


def test_publication_with_get_queries_builds_them_from_params_and_user_id() -> None:
    class Mine(Publication):
        def get_queries(self, text: str) -> list:
            return [models.Note.objects.filter(text=text, pk=self.user_id)]

    (query,) = Mine(user_id=7).get_queries("hello")

    assert str(query.query) == str(models.Note.objects.filter(text="hello", pk=7).query)


def test_publication_with_neither_queries_nor_get_queries_is_improperly_configured() -> None:
    class Empty(Publication):
        pass

    with pytest.raises(
        ImproperlyConfigured, match=r"^Empty has neither `queries` nor a `get_queries\(\)` method"
    ):
        Empty().get_queries()


@pytest.mark.parametrize("params", [[], ["ada@example.com"]])
def test_subscribing_to_a_misnamed_get_queries_is_a_publication_error_not_match_failed(params: list) -> None:
    """The client's params are not at fault (dddp.E005 at start-up): no 400 "Match failed"."""

    class ByEmail(Publication):
        def get_querys(self, email: str) -> list:
            return []

    with pytest.raises(PublicationError) as caught:
        ByEmail.check_params(params)

    assert str(caught.value) == (
        "ByEmail has neither `queries` nor a `get_queries()` method. "
        "Did you mean `get_queries`? ByEmail defines `get_querys`."
    )


def test_subscribing_to_a_get_queries_that_is_not_a_method_is_a_publication_error() -> None:
    class Listed(Publication):
        get_queries = [models.Note.objects.all()]  # type: ignore[assignment]

    with pytest.raises(PublicationError, match=r"^Listed\.get_queries is a list, not a method"):
        Listed.check_params([])


def test_queries_that_are_not_a_list_is_a_publication_error_when_served() -> None:
    class Single(Publication):
        queries = models.Note.objects.all()  # type: ignore[assignment]

    with pytest.raises(
        PublicationError, match=r"^Single\.queries is a queryset of testapp\.Note, not a list"
    ):
        Single().get_queries()


def test_a_static_or_class_method_get_queries_takes_the_params_alone() -> None:
    class Static(Publication):
        @staticmethod
        def get_queries(email: str) -> list:
            return []

    class OfClass(Publication):
        @classmethod
        def get_queries(cls, email: str) -> list:
            return []

    for publication in (Static, OfClass):
        publication.check_params(["ada@example.com"])
        with pytest.raises(MeteorError, match="Match failed"):
            publication.check_params([])


@pytest.mark.django_db
def test_get_queries_returns_fresh_querysets_not_the_cached_class_level_ones() -> None:
    class EveryNote(Publication):
        queries = [models.Note.objects.all()]

    assert list(EveryNote.queries[0]) == []  # evaluates, and so caches, the class-level queryset
    note = models.Note.objects.create(text="new")

    (fresh,) = EveryNote().get_queries()

    assert list(fresh) == [note]
    assert list(EveryNote.queries[0]) == []  # the class-level one still answers from its cache


def test_get_queries_publication_checks_params_against_its_signature() -> None:
    class ByEmail(Publication):
        def get_queries(self, email: str) -> list:
            return []

    ByEmail.check_params(["ada@example.com"])  # the right arity is accepted

    for wrong in ([], ["ada@example.com", "extra"]):
        with pytest.raises(MeteorError) as caught:
            ByEmail.check_params(wrong)
        assert (caught.value.error, caught.value.reason) == (400, "Match failed")


class _Plain(Publication):
    def get_queries(self, a: Any, b: Any = None) -> list:
        return []


class _Varargs(Publication):
    def get_queries(self, a: Any, *rest: Any) -> list:
        return []


class _KeywordOnly(Publication):
    def get_queries(self, a: Any, *, b: Any) -> list:
        return []


class _KeywordOnlyDefault(Publication):
    def get_queries(self, a: Any, *, b: Any = 1, **extra: Any) -> list:
        return []


class _PositionalOnly(Publication):
    def get_queries(self, a: Any, /, b: Any = None) -> list:
        return []


class _StaticDefaults(Publication):
    @staticmethod
    def get_queries(a: Any = None, b: Any = None) -> list:
        return []


class _ClassVarargs(Publication):
    @classmethod
    def get_queries(cls, *everything: Any) -> list:
        return []


@pytest.mark.parametrize(
    "publication",
    [_Plain, _Varargs, _KeywordOnly, _KeywordOnlyDefault, _PositionalOnly, _StaticDefaults, _ClassVarargs],
)
def test_check_params_accepts_exactly_what_the_signature_binds(publication: type[Publication]) -> None:
    """check_params counts params instead of binding them when it can (it runs at every
    subscription): it must accept and refuse exactly what a call would."""
    for count in range(5):
        params = list(range(count))
        try:
            publication().get_queries(*params)
            callable_ = True
        except TypeError:
            callable_ = False
        if callable_:
            publication.check_params(params)
        else:
            with pytest.raises(MeteorError, match="Match failed"):
                publication.check_params(params)


def test_check_params_details_say_what_did_not_fit() -> None:
    class ByEmail(Publication):
        def get_queries(self, email: str) -> list:
            return []

    with pytest.raises(MeteorError) as caught:
        ByEmail.check_params([])
    assert "email" in caught.value.details


def test_queries_publication_takes_no_params() -> None:
    """D-43: a publication declared with `queries` has no parameters to match."""

    class EveryNote(Publication):
        queries = [models.Note.objects.all()]

    EveryNote.check_params([])  # the right arity is accepted

    with pytest.raises(MeteorError) as caught:
        EveryNote.check_params(["unexpected"])
    assert (caught.value.error, caught.value.reason) == (400, "Match failed")


# --- registering ---------------------------------------------------------------------


def test_registering_two_publications_with_one_name_is_an_error(registry: Registry) -> None:
    class First(Publication):
        name = "notes"
        queries = [models.Note.objects.all()]

    class Second(Publication):
        name = "notes"
        queries = [models.Note.objects.none()]

    registry.register([First])
    with pytest.raises(ImproperlyConfigured, match="two publications are registered as 'notes'"):
        registry.register([Second])
    assert registry.publications == {"notes": First}


def test_registering_two_collections_for_one_model_is_an_error(registry: Registry) -> None:
    class First(Collection):
        model = models.Note

    class Second(Collection):
        model = models.Note

    with pytest.raises(ImproperlyConfigured, match=r"two collections are registered as 'testapp\.note'"):
        registry.register([First, Second])


def test_registering_two_methods_with_one_name_is_an_error(registry: Registry) -> None:
    def one(this):
        return 1

    def two(this):
        return 2

    registry.register([method(one, name="number")])
    with pytest.raises(ImproperlyConfigured, match="two methods are registered as 'number'"):
        registry.register([method(two, name="number")])
    assert registry.methods["number"].func is one


def test_registering_the_same_definitions_again_is_allowed(registry: Registry) -> None:
    class Notes(Collection):
        model = models.Note

    class EveryNote(Publication):
        queries = [models.Note.objects.all()]

    @method
    def ping(this):
        return "pong"

    registry.register([Notes, EveryNote, ping])
    registry.register([Notes, EveryNote, ping])
    registry.register([method(ping.func)])  # the same function wrapped again, as on a re-import

    assert registry.collections == {"testapp.note": Notes}
    assert registry.publications == {"EveryNote": EveryNote}
    assert list(registry.methods) == ["ping"]


def test_collections_publications_and_methods_have_separate_names(registry: Registry) -> None:
    class Notes(Collection):
        model = models.Note
        name = "notes"

    class EveryNote(Publication):
        name = "notes"
        queries = [models.Note.objects.all()]

    registry.register([Notes, EveryNote, method(lambda this: None, name="notes")])

    assert (list(registry.collections), list(registry.publications), list(registry.methods)) == (
        ["notes"],
        ["notes"],
        ["notes"],
    )


def plain_function(this):
    return None


@pytest.mark.parametrize(
    "item",
    [plain_function, Publication(), "AllNotes", models.Note],
    ids=["plain function", "publication instance", "string", "django model"],
)
def test_registering_anything_else_is_a_type_error_that_names_it(registry: Registry, item: object) -> None:
    with pytest.raises(TypeError) as caught:
        registry.register([item])

    message = str(caught.value)
    assert "takes Collection and Publication subclasses and @method functions" in message
    assert repr(item) in message


# --- methods -------------------------------------------------------------------------


def test_registry_method_decorator_registers_under_the_function_name(registry: Registry) -> None:
    @registry.method
    def add(this, a, b):
        return a + b

    assert isinstance(add, Method)
    assert registry.methods == {"add": add}
    assert add(None, 2, 3) == 5


def test_registry_method_decorator_with_name_registers_under_that_name(registry: Registry) -> None:
    @registry.method(name="math.add")
    def add(this, a, b):
        return a + b

    assert registry.methods == {"math.add": add}
    assert add.name == "math.add"
    assert add(None, 2, 3) == 5


def test_method_decorator_makes_a_method_without_registering_it(registry: Registry) -> None:
    @method
    def plain(this):
        return "plain"

    @method(name="named.one")
    def named(this):
        return "named"

    assert (plain.name, named.name) == ("plain", "named.one")
    assert registry.methods == {}

    registry.register([plain, named])

    assert registry.methods == {"plain": plain, "named.one": named}


# --- the global API ------------------------------------------------------------------


def test_global_api_holds_what_the_test_app_ddp_module_registers() -> None:
    """The dddp app's ready() imports every installed app's ddp.py (autodiscovery)."""
    ddp = sys.modules["tests.testapp.ddp"]  # imported by Django setup, not by this test

    assert API.collections["testapp.note"] is ddp.Note
    assert API.publications["AllNotes"] is ddp.AllNotes
    assert API.publications["NotesByText"] is ddp.NotesByText
    assert API.methods["add"] is ddp.add
    assert {"echo", "add", "add_note", "add_note_then_fail", "fail_internal"} <= set(API.methods)


@pytest.mark.parametrize("items", ["AllNotes", Publication], ids=["a string", "one class"])
def test_register_without_a_list_is_a_type_error_saying_so(registry: Registry, items: object) -> None:
    with pytest.raises(TypeError, match="takes a list of things to register"):
        registry.register(items)  # type: ignore[arg-type]


def test_method_without_a_name_needs_one_given() -> None:
    import functools

    with pytest.raises(TypeError, match="give a name"):
        Method(functools.partial(print, 1))
    assert Method(functools.partial(print, 1), name="printer").name == "printer"


def test_collection_shape_keeps_fields_drops_exclude_and_can_be_overridden() -> None:
    row = {"name": "Janet Evanovich", "email": "janet@example.com", "secret": "x"}

    class Everything(Collection):
        model = models.Note

    class Some(Collection):
        model = models.Note
        fields = ["name", "email", "secret"]
        exclude = ["secret"]

    class Shaped(Collection):
        model = models.Note
        exclude = ["email", "secret"]

        @classmethod
        def shape(cls, fields: dict[str, object]) -> dict[str, object]:
            fields = super().shape(fields)
            fields["initials"] = "".join(word[0] for word in str(fields["name"]).split())
            return fields

    assert Everything.shape(row) == row
    assert Some.shape(row) == {"name": "Janet Evanovich", "email": "janet@example.com"}
    assert Shaped.shape(row) == {"name": "Janet Evanovich", "initials": "JE"}
    assert row == {"name": "Janet Evanovich", "email": "janet@example.com", "secret": "x"}  # not mutated


def test_a_publication_s_declaration_is_inspected_once_not_at_every_subscription(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dddp.api

    inspected: list[type] = []
    declaration_problems = dddp.api.declaration_problems
    monkeypatch.setattr(
        dddp.api, "declaration_problems", lambda cls: inspected.append(cls) or declaration_problems(cls)
    )

    class ByText(Publication):
        def get_queries(self, text):  # type: ignore[no-untyped-def]
            return [models.Note.objects.filter(text=text)]

    for text in ("a", "b", "c"):
        ByText.check_params([text])
    assert inspected == [ByText]
    with pytest.raises(MeteorError, match="Match failed"):
        ByText.check_params([])


def test_a_publication_changed_since_its_last_subscription_is_inspected_again() -> None:
    class Changing(Publication):
        def get_queries(self, text):  # type: ignore[no-untyped-def]
            return [models.Note.objects.filter(text=text)]

    Changing.check_params(["a"])
    Changing.get_queries = [models.Note.objects.all()]  # type: ignore[assignment]
    with pytest.raises(PublicationError, match=r"^Changing\.get_queries is a list, not a method"):
        Changing.check_params(["a"])
