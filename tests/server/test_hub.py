"""The Hub's queue: notification batches are gathered so that a flood costs fewer writes,
and go ahead of calls queued before them, so that heavy calls do not hold live data."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import gevent
import pytest
from gevent.event import AsyncResult
from gevent.queue import Queue

from dddp.server import hub as hub_module
from dddp.server.hub import Hub
from dddp.server.routing import Routes


def idle_hub() -> Any:
    """A Hub's queue and clock alone: `_gather` needs nothing else (no database, no listener)."""
    hub = Hub.__new__(Hub)
    hub._queue = Queue()
    hub._batches = deque()
    hub._last_batch_done = 0.0
    hub._last_yield = 0.0
    return hub


def test_batches_queued_behind_one_are_dispatched_with_it() -> None:
    hub = idle_hub()
    for number in "123":
        hub._received([("c", number)])
    assert hub._gather() == [("c", "1"), ("c", "2"), ("c", "3")]
    assert not hub._batches


def test_a_batch_goes_ahead_of_the_calls_queued_before_it() -> None:
    hub = idle_hub()
    order: list[str] = []
    hub._process = lambda batch: order.append("batch " + ",".join(payload for _, payload in batch))
    runner = gevent.spawn(hub._run)
    try:
        slow = gevent.spawn(hub._call, lambda: (gevent.sleep(0.1), order.append("slow call")))
        gevent.sleep(0.01)  # the slow call runs
        queued = [gevent.spawn(hub._call, order.append, f"call {n}") for n in range(3)]
        gevent.sleep(0.01)
        hub._received([("c", "1")])
        hub._received([("c", "2")])
        gevent.joinall([slow, *queued], timeout=2)
        assert order == ["slow call", "batch 1,2", "call 0", "call 1", "call 2"]
    finally:
        runner.kill()


@pytest.mark.parametrize(
    ("calls_slice", "expected"),
    [
        (10.0, ["call 0", "call 1", "call 2", "other"]),  # within one slice: back to back
        (0.0, ["call 0", "other", "call 1", "call 2"]),  # the slice used up: the loop's turn
    ],
)
def test_queued_calls_run_back_to_back_for_a_slice_then_the_loop_serves_others(
    monkeypatch: pytest.MonkeyPatch, calls_slice: float, expected: list[str]
) -> None:
    monkeypatch.setattr(hub_module, "CALLS_SLICE", calls_slice)
    hub = idle_hub()
    order: list[str] = []
    runner = gevent.spawn(hub._run)
    try:
        gevent.sleep(0)  # the hub waits for its queue
        hub._last_yield = time.monotonic()
        for number in range(3):
            hub._queue.put(("call", order.append, (f"call {number}",), AsyncResult()))
        gevent.spawn(order.append, "other")
        gevent.sleep(0.05)
        assert order == expected
    finally:
        runner.kill()


def test_at_a_slow_pace_a_batch_goes_at_once() -> None:
    hub = idle_hub()
    hub._last_batch_done = time.monotonic() - 1.0
    hub._received([("c", "1")])
    later = gevent.spawn_later(hub_module.COALESCE_WAIT / 2, hub._received, [("c", "2")])
    assert hub._gather() == [("c", "1")]
    later.join()


def test_in_a_flood_the_hub_waits_a_moment_for_more() -> None:
    hub = idle_hub()
    hub._last_batch_done = time.monotonic()  # the previous batch was just dispatched
    hub._received([("c", "1")])
    later = gevent.spawn_later(hub_module.COALESCE_WAIT / 4, hub._received, [("c", "2")])
    assert hub._gather() == [("c", "1"), ("c", "2")]
    later.join()


class FakeObserver:
    """What `_dispatch` needs of an Observer: its collections, and `apply` to record."""

    def __init__(self, *collections: str) -> None:
        self.collections = frozenset(collections)
        self.queries: list[Any] = []  # none the routes can file by value
        self.loaded = True
        self.arrived: list[Any] | None = None
        self.applied: list[list[str]] = []

    def apply(self, changes: list[Any], joined: Any = None) -> None:
        self.applied.append([change.id for change in changes])


def observing_hub(observers: dict[str, FakeObserver]) -> Any:
    hub = idle_hub()
    hub.observers, hub._routes = {}, Routes()
    for key, observer in observers.items():
        hub._add(key, observer)
    return hub


def change(collection: str, doc_id: str) -> Any:
    from dddp.changes import Change

    return Change("save", collection, doc_id, {})


def test_a_batch_reaches_only_the_observers_of_its_collections_in_the_order_they_were_made() -> None:
    order: list[str] = []
    observers = {
        "books": FakeObserver("books"),
        "users": FakeObserver("users"),
        "books by author email": FakeObserver("books", "authors"),
        "tags": FakeObserver("tags"),
    }
    for name, observer in observers.items():
        observer.apply = lambda changes, joined=None, name=name, observer=observer: (  # type: ignore[method-assign]
            order.append(name),
            FakeObserver.apply(observer, changes),
        )
    hub = observing_hub(observers)
    hub._dispatch(
        [change("authors", "a1"), change("books", "b1"), change("users", "u1"), change("books", "b2")]
    )
    assert order == ["books", "users", "books by author email"]  # not "tags"
    assert observers["books"].applied == [["b1", "b2"]]
    assert observers["users"].applied == [["u1"]]
    assert observers["books by author email"].applied == [["a1", "b1", "b2"]]  # commit order
    assert observers["tags"].applied == []


def test_a_removed_observer_is_offered_nothing_and_leaves_no_trace() -> None:
    observers = {"first": FakeObserver("books"), "second": FakeObserver("books")}
    hub = observing_hub(observers)
    assert hub._remove("first") is observers["first"]
    hub._dispatch([change("books", "b1")])
    assert observers["first"].applied == [] and observers["second"].applied == [["b1"]]
    hub._remove("second")
    assert not hub._routes.observed() and hub.observers == {}
