"""The Hub's queue: notification batches are gathered so that a flood costs fewer writes."""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent.queue import Queue

from dddp.server import hub as hub_module
from dddp.server.hub import Hub


def idle_hub() -> Any:
    """A Hub's queue and clock alone: `_gather` needs nothing else (no database, no listener)."""
    hub = Hub.__new__(Hub)
    hub._queue = Queue()
    hub._last_batch_done = 0.0
    return hub


def test_batches_queued_behind_one_are_dispatched_with_it() -> None:
    hub = idle_hub()
    hub._received([("c", "2")])
    hub._received([("c", "3")])
    assert hub._gather([("c", "1")]) == [("c", "1"), ("c", "2"), ("c", "3")]
    assert hub._queue.empty()


def test_gathering_stops_at_a_call_so_that_the_order_is_kept() -> None:
    hub = idle_hub()
    hub._received([("c", "2")])
    hub._queue.put(("call", print, (), None))
    hub._received([("c", "3")])
    assert hub._gather([("c", "1")]) == [("c", "1"), ("c", "2")]
    assert [command[0] for command in list(hub._queue.queue)] == ["call", "batch"]


def test_at_a_slow_pace_a_batch_goes_at_once() -> None:
    hub = idle_hub()
    hub._last_batch_done = time.monotonic() - 1.0
    later = gevent.spawn_later(hub_module.COALESCE_WAIT / 2, hub._received, [("c", "2")])
    assert hub._gather([("c", "1")]) == [("c", "1")]
    later.join()


def test_in_a_flood_the_hub_waits_a_moment_for_more() -> None:
    hub = idle_hub()
    hub._last_batch_done = time.monotonic()  # the previous batch was just dispatched
    later = gevent.spawn_later(hub_module.COALESCE_WAIT / 4, hub._received, [("c", "2")])
    assert hub._gather([("c", "1")]) == [("c", "1"), ("c", "2")]
    later.join()
