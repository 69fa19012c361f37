"""Saves and deletes of published models send Changes with NOTIFY, transactionally."""

from __future__ import annotations

import select
from collections.abc import Iterator
from typing import Any

import django
import psycopg2
import pytest
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat

from dddp import changes
from dddp.database import database_url
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True)

CHANNEL = changes.channel_for("testapp.note")


@pytest.fixture
def listener() -> Iterator[Any]:
    """A separate PostgreSQL connection LISTENing to the notes' channel."""
    conn = psycopg2.connect(database_url(connection.settings_dict))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'LISTEN "{CHANNEL}"')
    yield conn
    conn.close()


def received(conn: Any, wait: float = 0.5) -> list[changes.Change]:
    """Every Change delivered so far (waiting up to `wait` seconds for the first)."""
    reassembler = changes.Reassembler()
    found = []
    if select.select([conn], [], [], wait)[0]:
        conn.poll()
    while True:
        for notify in conn.notifies:
            change = reassembler.feed(notify.channel, notify.payload)
            if change is not None:
                found.append(change)
        conn.notifies.clear()
        if not select.select([conn], [], [], 0.05)[0]:
            return found
        conn.poll()


def test_save_sends_the_whole_document(listener: Any) -> None:
    note = Note.objects.create(text="hello")
    [change] = received(listener)
    assert (change.op, change.collection, change.id) == ("save", "testapp.note", str(note.pk))
    assert change.fields == {"text": "hello"}


def test_delete_sends_the_id(listener: Any) -> None:
    note = Note.objects.create(text="bye")
    pk = note.pk
    note.delete()
    assert [(c.op, c.id) for c in received(listener)] == [("save", str(pk)), ("delete", str(pk))]


def test_nothing_is_delivered_before_commit_and_all_in_order_after(listener: Any) -> None:
    with transaction.atomic():
        note = Note.objects.create(text="one")
        note.text = "two"
        note.save()
        note.text = "one"
        note.save()  # identical to the first: must not be collapsed by PostgreSQL
        assert received(listener, wait=0.2) == []
    assert [c.fields["text"] for c in received(listener)] == ["one", "two", "one"]


def test_rolled_back_transaction_sends_nothing(listener: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        Note.objects.create(text="never")
        raise RuntimeError
    assert received(listener, wait=0.3) == []


def test_rolled_back_savepoint_sends_nothing_of_its_own(listener: Any) -> None:
    with transaction.atomic():
        Note.objects.create(text="kept")
        try:
            with transaction.atomic():
                Note.objects.create(text="undone")
                raise RuntimeError
        except RuntimeError:
            pass
    assert [c.fields["text"] for c in received(listener)] == ["kept"]


def test_f_expression_save_sends_the_value_the_database_computed(listener: Any) -> None:
    note = Note.objects.create(text="a")
    received(listener)
    note.text = Concat(F("text"), Value("b"))  # type: ignore[assignment]
    note.save()
    [change] = received(listener)
    assert change.fields == {"text": "ab"}


def test_update_fields_save_sends_the_database_row(listener: Any) -> None:
    note = Note.objects.create(text="first")
    stale = Note.objects.get(pk=note.pk)
    Note.objects.filter(pk=note.pk).update(text="changed elsewhere")  # no signal: QuerySet.update
    received(listener)
    stale.save(update_fields=["text"])  # writes its (stale) text: the DB now has "first"
    [change] = received(listener)
    assert change.fields == {"text": "first"}


def test_deferred_fields_are_read_back(listener: Any) -> None:
    note = Note.objects.create(text="full")
    received(listener)
    partial = Note.objects.only("id").get(pk=note.pk)
    partial.save()
    [change] = received(listener)
    assert change.fields == {"text": "full"}


def test_payload_over_the_notify_limit_arrives_in_one_piece(listener: Any) -> None:
    """PostgreSQL refuses payloads of 8000 bytes or more: chunks are reassembled."""
    big = changes.Change("save", "testapp.note", "1", {"text": "x" * 100_000, "u": "é" * 30_000})
    with connection.cursor() as cursor:
        for payload in changes.payloads(big):
            assert len(payload.encode()) < 8000
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
    [arrived] = received(listener)
    assert arrived.fields == big.fields


@pytest.mark.skipif(django.VERSION < (5, 0), reason="db_default needs Django 5.0+")
def test_database_defaults_are_sent_as_the_database_filled_them() -> None:
    from tests.defaultsapp.models import Stamp

    conn = psycopg2.connect(database_url(connection.settings_dict))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'LISTEN "{changes.channel_for("defaultsapp.stamp")}"')
    try:
        stamp = Stamp.objects.create(label="x")
        [change] = received(conn)
        assert change.fields["label"] == "x"
        assert change.fields["counter"] == 7
        assert change.fields["created"] is not None and change.fields["created"].year >= 2024
        assert change.id == str(stamp.pk)
    finally:
        conn.close()


def test_notifying_never_weakens_the_durability_of_the_writers_own_commits(listener: Any) -> None:
    """The autocommit NOTIFY turns synchronous_commit off for its own transaction only."""

    def synchronous_commit() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return str(cursor.fetchone()[0])

    Note.objects.create(text="autocommit")
    assert synchronous_commit() == "on"
    with transaction.atomic():
        Note.objects.create(text="in a transaction")
        assert synchronous_commit() == "on"
    assert [c.fields["text"] for c in received(listener)] == ["autocommit", "in a transaction"]
