"""CPU-bound work (password hashing) runs off the event loop, a bounded number at a time."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Iterator

import gevent
import pytest

from dddp import cpu_bound
from dddp.server.cpu_threads import CPUThreads


@pytest.fixture
def threads() -> Iterator[CPUThreads]:
    pool = CPUThreads(1)
    yield pool
    pool.stop()


def slow_hash() -> float:
    started = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 300_000)
    return started


def test_a_job_runs_in_another_thread(threads: CPUThreads) -> None:
    assert threads.run(threading.get_ident) != threading.get_ident()


def test_the_django_side_runs_jobs_through_the_installed_runner(threads: CPUThreads) -> None:
    assert cpu_bound.run(threading.get_ident) == threading.get_ident()  # nothing installed: inline
    cpu_bound.install(threads.run)
    try:
        assert cpu_bound.run(threading.get_ident) != threading.get_ident()
    finally:
        cpu_bound.install(None)


def test_the_loop_keeps_serving_while_hashes_run(threads: CPUThreads) -> None:
    """Other greenlets are not held for a hash's CPU time (PBKDF2 releases the GIL)."""
    lags: list[float] = []

    def ticker() -> None:
        while True:
            before = time.perf_counter()
            gevent.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    beating = gevent.spawn(ticker)
    started = time.perf_counter()
    hashes = [gevent.spawn(threads.run, slow_hash) for _ in range(3)]
    gevent.joinall(hashes, raise_error=True)
    took = time.perf_counter() - started
    beating.kill()
    assert len(lags) > took / 0.005 / 4  # the ticker kept ticking
    assert max(lags) < took / 3  # never stopped for as long as one hash


def test_at_most_size_run_at_once(threads: CPUThreads) -> None:
    spans: list[tuple[float, float]] = []

    def timed() -> None:
        spans.append((slow_hash(), time.perf_counter()))

    gevent.joinall([gevent.spawn(threads.run, timed) for _ in range(3)], raise_error=True)
    spans.sort()
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))  # one after another
