"""Saves and deletes of published models send Changes with NOTIFY, transactionally."""

from __future__ import annotations

import contextlib
import datetime
import select
import threading
import time
from collections.abc import Iterator
from typing import Any

import django
import psycopg2
import pytest
from django.db import connection, transaction
from django.db.models import F, Model, Value
from django.db.models.functions import Concat
from django.db.models.signals import post_save, pre_save

from dddp import changes, signals
from dddp.api import API
from dddp.database import database_url
from tests.testapp.models import DatedNote, Note, PinnedNote

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
        assert change.fields["double"] == 14  # a generated column
        stamp.counter = 10
        stamp.save()  # an update: PostgreSQL computes `double` again
        [change] = received(conn)
        assert (change.fields["counter"], change.fields["double"]) == (10, 20)
    finally:
        conn.close()


@contextlib.contextmanager
def a_later_receiver_failing() -> Iterator[None]:
    """A post_save receiver of Note, connected after dddp's, that raises."""

    def fail(sender: Any, instance: Note, **kwargs: Any) -> None:
        raise RuntimeError("a later receiver failed")

    post_save.connect(fail, sender=Note, dispatch_uid="test-fail-after-dddp")
    try:
        with pytest.raises(RuntimeError):
            yield
    finally:
        post_save.disconnect(sender=Note, dispatch_uid="test-fail-after-dddp")


def test_an_insert_in_autocommit_and_its_notify_commit_together(listener: Any) -> None:
    """An insert runs in atomic(): a receiver failing after dddp's undoes the row and its Change."""
    with a_later_receiver_failing():
        Note.objects.create(text="never committed")
    assert not Note.objects.filter(text="never committed").exists()
    assert received(listener, wait=0.3) == []
    assert connection.get_autocommit() and not connection.in_atomic_block


def test_an_update_in_autocommit_carries_its_notify_in_its_own_statement(listener: Any) -> None:
    """The UPDATE and its NOTIFY are one statement, one transaction; post_save follows, as in Django."""
    note = Note.objects.create(text="before")
    received(listener)
    note.text = "after"
    with a_later_receiver_failing():
        note.save()
    assert Note.objects.get(pk=note.pk).text == "after"  # committed, as Django commits it in autocommit
    assert [c.fields["text"] for c in received(listener)] == ["after"]  # and so was its Change


def test_an_update_of_a_row_gone_meanwhile_is_an_insert_and_is_sent(listener: Any) -> None:
    note = Note.objects.create(text="first life")
    Note.objects.filter(pk=note.pk).delete()  # another writer, as it were (a delete: sent)
    received(listener)
    note.text = "second life"
    note.save()  # the UPDATE finds no row, so Django INSERTs it again
    assert [(c.op, c.id, c.fields) for c in received(listener)] == [
        ("save", str(note.pk), {"text": "second life"})
    ]


def test_other_updates_during_a_save_keep_their_own_row_counts(listener: Any) -> None:
    """Only the save's own UPDATE carries the NOTIFY: a receiver's queryset update counts its rows."""
    notes = [Note.objects.create(text="same") for _ in range(3)]
    received(listener)
    counts = []

    def update_others(sender: Any, instance: Note, **kwargs: Any) -> None:
        counts.append(Note.objects.filter(text__startswith="same").update(text="same, updated"))

    pre_save.connect(update_others, sender=Note, dispatch_uid="test-update-others")
    try:
        notes[0].text = "own"
        notes[0].save()
    finally:
        pre_save.disconnect(sender=Note, dispatch_uid="test-update-others")
    assert counts == [3]
    assert [c.fields["text"] for c in received(listener)] == ["own"]  # QuerySet.update() sends nothing


@pytest.mark.parametrize("update_fields", [None, ["text"]], ids=["update", "update_fields"])
def test_two_autocommit_writers_of_one_row_notify_in_the_order_they_wrote(
    listener: Any, update_fields: list[str] | None
) -> None:
    """The second writer waits for the first's NOTIFY: clients end on the row's last value.

    The first writer is held after its row write, before post_save's NOTIFY
    (if it has one), while the second saves the same row. Were the row
    committed before its NOTIFY, the second's Change would arrive first and
    clients would end on "first". A plain update carries its NOTIFY in its
    own statement; one with `update_fields` reads the row back in atomic().
    """
    note = Note.objects.create(text="start")
    received(listener)
    first_wrote = threading.Event()

    def hold_the_first_writer(sender: Any, instance: Note, **kwargs: Any) -> None:
        if instance.text == "first":
            first_wrote.set()
            time.sleep(0.5)

    def write(text: str) -> None:
        try:
            row = Note.objects.get(pk=note.pk)
            row.text = text
            row.save(update_fields=update_fields)
        finally:
            connection.close()

    collection = API.collection_for_model(Note)
    assert collection is not None
    signals.disconnect(collection)  # so that the holding receiver runs before dddp's
    post_save.connect(hold_the_first_writer, sender=Note, dispatch_uid="test-hold")
    signals.connect(collection)
    try:
        first = threading.Thread(target=write, args=("first",))
        first.start()
        assert first_wrote.wait(5)
        second = threading.Thread(target=write, args=("second",))
        second.start()
        first.join(10)
        second.join(10)
    finally:
        post_save.disconnect(sender=Note, dispatch_uid="test-hold")
    assert [c.fields["text"] for c in received(listener)] == ["first", "second"]
    assert Note.objects.get(pk=note.pk).text == "second"


def test_saves_through_a_proxy_model_are_sent(listener: Any) -> None:
    pinned = PinnedNote.objects.create(text="pinned")
    pk = pinned.pk
    pinned.text = "pinned again"
    pinned.save()
    pinned.delete()
    assert [(c.op, c.collection, c.id, c.fields) for c in received(listener)] == [
        ("save", "testapp.note", str(pk), {"text": "pinned"}),
        ("save", "testapp.note", str(pk), {"text": "pinned again"}),
        ("delete", "testapp.note", str(pk), {}),
    ]


def test_saves_of_a_subclass_send_the_parents_document(listener: Any) -> None:
    """Multi-table inheritance: a DatedNote's save writes a Note row, sent as a Note."""
    dated = DatedNote.objects.create(text="dated", dated=datetime.date(2024, 2, 29))
    pk = dated.pk
    dated.text = "dated again"
    dated.save()
    dated.delete()
    assert [(c.op, c.collection, c.id, c.fields) for c in received(listener)] == [
        ("save", "testapp.note", str(pk), {"text": "dated"}),
        ("save", "testapp.note", str(pk), {"text": "dated again"}),
        ("delete", "testapp.note", str(pk), {}),
    ]


def test_disconnecting_a_collection_gives_the_model_its_own_save_back(listener: Any) -> None:
    collection = API.collection_for_model(Note)
    assert collection is not None
    assert Note.save_base is not Model.save_base
    signals.disconnect(collection)
    try:
        assert Note.save_base is Model.save_base
        Note.objects.create(text="unpublished")
        assert received(listener, wait=0.3) == []
    finally:
        signals.connect(collection)
    assert Note.save_base is not Model.save_base
