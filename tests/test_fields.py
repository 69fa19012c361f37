"""dddp.fields.MeteorIdField: a new row's id is the one the Meteor client's stub drew (R-2, R-6)."""

from __future__ import annotations

import pytest

from dddp.api import API
from dddp.fields import MeteorIdField
from dddp.methods import ConnectionInfo, MethodInvocation, call_method, current_invocation, method
from dddp.protocol.random import ID_LENGTH, UNMISTAKABLE_CHARS
from tests.testapp import models

SEED = "b1d5e3e2b5a0f3c1e9d7"
TASKS_IDS = ["RfhKD4zm32A5tTiwy", "yZCwHErjXiRhj8aXP"]  # docs/ddp-protocol.md R-5, stream /collection/tasks


def call(name: str, *params: object, seed: str | None = SEED) -> object:
    this = MethodInvocation(name, connection=ConnectionInfo(id="c"), random_seed=seed)
    return call_method(API.methods[name], name, list(params), this)


@pytest.mark.django_db
def test_rows_made_in_a_method_get_the_ids_of_its_seed_in_order() -> None:
    """Two tasks with a label made between them: the tasks' stream is not disturbed."""
    assert call("add_tasks", "a", "b") == TASKS_IDS
    assert sorted(models.Task.objects.values_list("id", "text")) == sorted(zip(TASKS_IDS, "ab", strict=True))
    assert models.Label.objects.count() == 2


@pytest.mark.django_db
def test_the_stream_is_named_after_the_registered_collection() -> None:
    """Task is registered as "tasks"; Label under its default name, testapp.label."""
    this = MethodInvocation("x", connection=ConnectionInfo(id="c"), random_seed=SEED)
    expected = this.random_stream("/collection/testapp.label").id()
    assert call("add_tasks", "a")[0] == TASKS_IDS[0]  # type: ignore[index]
    assert models.Label.objects.get().id == expected


@pytest.mark.django_db
def test_without_a_seed_or_outside_a_method_ids_are_random() -> None:
    first, second = call("add_tasks", "a", seed=None), call("add_tasks", "a", seed=None)
    assert first != second
    made = models.Task.objects.create(text="from a shell")
    ids = [*first, *second, made.id]  # type: ignore[misc]
    assert all(len(i) == ID_LENGTH and set(i) <= set(UNMISTAKABLE_CHARS) for i in ids)
    assert current_invocation() is None


@pytest.mark.django_db
def test_an_id_given_explicitly_is_kept() -> None:
    assert models.Task.objects.create(id="myOwnId", text="x").pk == "myOwnId"


@pytest.mark.django_db
def test_the_invocation_is_current_only_while_its_method_runs() -> None:
    seen = []
    probe = method(lambda this: seen.append(current_invocation() is this), name="probe")
    call_method(probe, "probe", [], MethodInvocation("probe", connection=ConnectionInfo(id="c")))
    assert seen == [True]
    assert current_invocation() is None


def test_the_field_deconstructs_without_its_defaults() -> None:
    """What makemigrations writes: `MeteorIdField(primary_key=True)`, no max_length or editable."""
    _name, path, args, kwargs = MeteorIdField(primary_key=True).deconstruct()
    assert (path, args) == ("dddp.fields.MeteorIdField", [])
    assert kwargs == {"primary_key": True}
    assert MeteorIdField().max_length == ID_LENGTH
