"""A Snapshot: a publication's documents encoded once for every session subscribing before they change.

In process: the real Snapshot, the real Observer (fed Changes by hand, no
database), and real Sessions on the fake transport of test_session.
"""

from __future__ import annotations

import collections
import gc
import json
from typing import Any

import gevent
import pytest

from dddp.api import API
from dddp.changes import Change
from dddp.protocol import messages
from dddp.server import snapshot as snapshot_module
from dddp.server.observer import Observer
from dddp.server.session import WRITE_AT_ONCE
from dddp.server.snapshot import CHUNK_BYTES, Snapshot
from tests.server.test_session import FakeTransport, connected
from tests.testapp.ddp import AllNotes

NOTES = "testapp.note"


def notes(count: int) -> dict[str, dict[str, Any]]:
    return {str(number): {"text": f"note {number:05}" + "n" * 90} for number in range(count)}


def test_its_texts_are_every_documents_added_in_chunks_of_about_chunk_bytes() -> None:
    docs = notes(2000)
    chunks = list(Snapshot({NOTES: docs, "empty": {}}).texts(NOTES))
    assert [text for chunk in chunks for text in chunk] == [
        messages.added(NOTES, doc_id, fields) for doc_id, fields in docs.items()
    ]
    assert len(chunks) > 2
    assert all(CHUNK_BYTES <= sum(map(len, chunk)) < CHUNK_BYTES + 200 for chunk in chunks[:-1])


def test_every_reader_gets_the_same_chunks_encoded_as_the_first_reader_reaches_them() -> None:
    snapshot = Snapshot({NOTES: notes(2000)})
    first, second = snapshot.texts(NOTES), snapshot.texts(NOTES)
    chunk = next(first)
    assert next(second) is chunk  # not encoded again
    assert len(snapshot._encodings[NOTES].chunks) == 1  # nothing ahead of the readers
    rest = list(second)
    assert [next(first) for _ in rest] == rest and all(a is b for a, b in zip(first, rest, strict=False))


def test_it_keeps_the_documents_as_they_were() -> None:
    docs = notes(3)
    snapshot = Snapshot({NOTES: docs})
    docs["3"] = {"text": "later"}
    del docs["0"]
    assert list(snapshot.documents[NOTES]) == ["0", "1", "2"]
    assert len([text for chunk in snapshot.texts(NOTES) for text in chunk]) == 3


def notes_observer(count: int) -> Observer:
    observer = Observer(API, AllNotes, [], None)
    observer.install([notes(count)])
    return observer


def test_subscribers_attaching_before_a_change_share_one_snapshot_and_after_it_get_a_new_one() -> None:
    observer = notes_observer(2000)
    transports = [FakeTransport() for _ in range(3)]
    for transport in transports:
        transport.slow = True  # still sending: the snapshot is in use
    sessions = [connected(transport) for transport in transports]
    observer.attach(sessions[0], "a")
    observer.attach(sessions[1], "b")
    gevent.sleep(0)
    shared = transports[0].writes[0]
    assert all(a is b for a, b in zip(transports[1].writes[0], shared, strict=True))  # encoded once

    observer.apply([Change("save", NOTES, "0", {"id": 0, "text": "edited"})])
    observer.attach(sessions[2], "c")
    gevent.sleep(0)
    assert transports[2].writes[0][0] is not shared[0]
    assert json.loads(transports[2].writes[0][0])["fields"]["text"] == "edited"
    while transports[0].pending_bytes:
        transports[0].catch_up()
    received = transports[0].received()
    assert len(received) == 2001 and received[0]["fields"]["text"].startswith("note 00000")
    last = received[-1]
    assert (last["msg"], last["id"], last["fields"]["text"]) == ("changed", "0", "edited")


def test_a_snapshot_is_kept_a_while_after_it_was_sent_then_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_module, "SNAPSHOT_LINGER", 0.2)
    # (Not behind the snapshots of the tests before, each kept for the whole 10 s.)
    monkeypatch.setattr(snapshot_module, "_lingering", collections.deque())
    monkeypatch.setattr(snapshot_module, "_keeper", [])
    observer = notes_observer(100)
    first, second = FakeTransport(), FakeTransport()
    observer.attach(connected(first), "a")
    gevent.sleep(0)
    texts = first.writes[-1]
    assert len(first.received()) == 100  # all sent: no session holds the snapshot now
    observer.attach(connected(second), "b")  # one after the other: the same texts
    gevent.sleep(0)
    assert all(a is b for a, b in zip(texts, second.writes[-1], strict=True))
    gevent.sleep(0.3)
    gc.collect()
    assert observer._snapshot is not None and observer._snapshot() is None


def test_a_few_documents_are_written_at_once_and_more_by_a_writer_as_the_client_takes_them() -> None:
    few, more = FakeTransport(), FakeTransport()
    session = connected(few)
    notes_observer(WRITE_AT_ONCE).attach(session, "a")
    assert len(few.received()) == WRITE_AT_ONCE  # before the loop's next turn: no writer greenlet
    session.send(messages.ready(["a"]))
    assert few.received()[-1] == {"msg": "ready", "subs": ["a"]}
    notes_observer(WRITE_AT_ONCE + 1).attach(connected(more), "b")
    assert more.received() == []
    gevent.sleep(0)
    assert len(more.received()) == WRITE_AT_ONCE + 1
