"""dddp.methods: calling a method for a client (D-40 to D-43, D-80), and the method's `this`."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from dddp.api import API
from dddp.methods import ConnectionInfo, Method, MethodInvocation, call_method, method
from dddp.protocol.errors import MeteorError
from tests.testapp import models


def invocation(name: str = "test", **kwargs: Any) -> MethodInvocation:
    return MethodInvocation(name, connection=ConnectionInfo(id="conn-1"), **kwargs)


# --- call_method ---------------------------------------------------------------------


def test_calling_no_method_is_404_method_not_found() -> None:
    """D-80, D-41 (Meteor 3.x text)."""
    with pytest.raises(MeteorError) as caught:
        call_method(None, "x", [], invocation("x"))

    assert caught.value == MeteorError(404, "Method 'x' not found")


@pytest.mark.django_db
def test_method_result_is_returned() -> None:
    add = method(lambda this, a, b: a + b, name="add")

    assert call_method(add, "add", [2, 3], invocation("add")) == 5


@pytest.mark.parametrize(
    ("params", "problem"),
    [([1], "missing a required argument: 'b'"), ([1, 2, 3], "too many positional arguments")],
)
def test_wrong_params_are_400_match_failed_and_the_method_does_not_run(params: list, problem: str) -> None:
    """D-43."""
    calls = []

    @method
    def add(this, a, b):
        calls.append((a, b))

    with pytest.raises(MeteorError) as caught:
        call_method(add, "add", params, invocation("add"))

    assert (caught.value.error, caught.value.reason) == (400, "Match failed")
    assert problem in caught.value.details
    assert calls == []


@pytest.mark.django_db
def test_meteor_error_from_a_method_passes_through_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    """D-40: deliberate client errors reach the client as raised, and are not logged."""
    raised = MeteorError("not-allowed", "You may not", {"why": "testing"})

    @method
    def refuse(this):
        raise raised

    with caplog.at_level(logging.DEBUG, logger="dddp.methods"):
        with pytest.raises(MeteorError) as caught:
            call_method(refuse, "refuse", [], invocation("refuse"))

    assert caught.value is raised
    assert [r for r in caplog.records if r.name == "dddp.methods"] == []


@pytest.mark.django_db
def test_other_exception_is_500_logged_once_with_traceback_and_chained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """D-42: the client sees only 500 "Internal server error"; the log has the traceback."""
    original = ValueError("secret internal detail")

    @method
    def broken(this):
        raise original

    with caplog.at_level(logging.DEBUG, logger="dddp.methods"):
        with pytest.raises(MeteorError) as caught:
            call_method(broken, "broken", [], invocation("broken"))

    assert caught.value == MeteorError(500, "Internal server error")
    assert "secret" not in str(caught.value.to_wire())
    assert caught.value.__cause__ is original

    records = [r for r in caplog.records if r.name == "dddp.methods"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "broken" in records[0].getMessage()
    assert records[0].exc_info is not None and records[0].exc_info[1] is original
    assert "secret internal detail" in caplog.text  # the formatted traceback


@pytest.mark.django_db(transaction=True)
def test_writes_of_a_method_that_raises_a_meteor_error_are_rolled_back() -> None:
    with pytest.raises(MeteorError) as caught:
        call_method(API.methods["add_note_then_fail"], "add_note_then_fail", ["gone"], invocation())

    assert caught.value.error == 409
    assert models.Note.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_writes_of_a_method_that_raises_another_exception_are_rolled_back() -> None:
    @method
    def write_then_crash(this, text):
        models.Note.objects.create(text=text)
        raise KeyError(text)

    with pytest.raises(MeteorError):
        call_method(write_then_crash, "write_then_crash", ["gone"], invocation())

    assert models.Note.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_writes_of_a_successful_method_are_kept() -> None:
    pk = call_method(API.methods["add_note"], "add_note", ["kept"], invocation())

    assert list(models.Note.objects.values_list("pk", "text")) == [(int(pk), "kept")]


# --- MethodInvocation ----------------------------------------------------------------


def test_invocation_carries_name_connection_seed_and_is_not_a_simulation() -> None:
    this = invocation("add", user_id=3, random_seed="seed")

    assert (this.name, this.connection.id, this.user_id, this.random_seed) == ("add", "conn-1", 3, "seed")
    assert this.is_simulation is False


@pytest.mark.django_db
def test_user_is_none_without_user_id_and_asks_the_database_nothing(
    django_assert_num_queries: Any,
) -> None:
    with django_assert_num_queries(0):
        assert invocation().user is None


@pytest.mark.django_db
def test_user_is_the_django_user_loaded_once(django_assert_num_queries: Any) -> None:
    ada = get_user_model().objects.create_user("ada")
    this = invocation(user_id=ada.pk)

    with django_assert_num_queries(1):
        assert this.user == ada
        assert this.user == ada


@pytest.mark.django_db
def test_user_of_a_deleted_account_is_none() -> None:
    ada = get_user_model().objects.create_user("ada")
    pk = ada.pk
    ada.delete()

    assert invocation(user_id=pk).user is None


@pytest.mark.django_db
def test_set_user_id_tells_the_connection_and_forgets_the_loaded_user() -> None:
    users = get_user_model().objects
    ada, bob = users.create_user("ada"), users.create_user("bob")
    told = []
    this = invocation(user_id=ada.pk, set_user_id=told.append)
    assert this.user == ada

    this.set_user_id(bob.pk)

    assert told == [bob.pk]
    assert this.user_id == bob.pk
    assert this.user == bob

    this.set_user_id(None)  # logging out

    assert told == [bob.pk, None]
    assert this.user_id is None
    assert this.user is None


def test_set_user_id_without_a_callback_is_a_runtime_error() -> None:
    this = invocation(user_id=1)

    with pytest.raises(RuntimeError, match="does not support logging in"):
        this.set_user_id(2)
    assert this.user_id == 1


# --- Method --------------------------------------------------------------------------


def test_method_keeps_the_function_name_and_doc() -> None:
    def greet(this, who):
        """Say hello."""
        return f"hello {who}"

    found = Method(greet)

    assert (found.name, found.__doc__, found.__wrapped__, found.func) == ("greet", "Say hello.", greet, greet)
    assert repr(found) == "<DDP method 'greet'>"
    assert found(None, "ada") == "hello ada"


def test_method_name_overrides_the_function_name() -> None:
    assert Method(lambda this: None, name="books.add").name == "books.add"


@pytest.mark.parametrize("not_callable", [None, "greet", 42])
def test_method_rejects_what_is_not_callable(not_callable: object) -> None:
    with pytest.raises(TypeError, match="a DDP method must be callable"):
        Method(not_callable)  # type: ignore[arg-type]


def test_method_with_star_args_accepts_any_params() -> None:
    echo = method(lambda this, *args: list(args), name="echo")

    for params in ([], [1], [1, 2, 3]):
        echo.check_params(params)
