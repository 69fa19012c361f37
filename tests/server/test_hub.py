"""The Hub's queue: notification batches are gathered so that a flood costs fewer writes,
and go ahead of calls queued before them, so that heavy calls do not hold live data."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import gevent
from gevent.queue import Queue

from dddp.server import hub as hub_module
from dddp.server.hub import Hub


def idle_hub() -> Any:
    """A Hub's queue and clock alone: `_gather` needs nothing else (no database, no listener)."""
    hub = Hub.__new__(Hub)
    hub._queue = Queue()
    hub._batches = deque()
    hub._last_batch_done = 0.0
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
