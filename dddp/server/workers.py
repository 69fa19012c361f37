"""A fixed pool of greenlets that run Django code (methods, queries) for sessions.

Django keeps one database connection per thread, and under gevent a greenlet is
a thread: running Django code in each client's own greenlet would open one
PostgreSQL connection per client. Sessions hand their calls to this pool
instead, so a server process holds at most `size` connections, whatever the
number of clients, and reuses them from call to call.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.event import AsyncResult
from gevent.queue import Empty, Queue

logger = logging.getLogger("dddp.server")

_STOP = object()

#: Seconds `WorkerPool.stop` waits, at most, for its killed greenlets to unwind
#: (a killed method's transaction rolls back in milliseconds).
STOP_GRACE = 0.1


class WorkerPool:
    """Runs callables on `size` long-lived greenlets; `run` waits for the result."""

    def __init__(self, size: int):
        self.size = size
        self._jobs: Queue[Any] = Queue()
        self._busy: set[gevent.Greenlet] = set()
        self._greenlets = [gevent.spawn(self._work) for _ in range(size)]

    def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run `func(*args)` on a worker; return its value or raise its exception.

        If `stop` abandons the job, this raises GreenletExit: the calling
        greenlet ends quietly, as gevent ends a killed one.
        """
        return self.submit(func, *args).get()

    def submit(self, func: Callable[..., Any], *args: Any) -> AsyncResult[Any]:
        """Queue `func(*args)` for a worker; the result is its value or exception (as `run`)."""
        result: AsyncResult[Any] = AsyncResult()
        self._jobs.put((func, args, result))
        return result

    @property
    def idle(self) -> bool:
        return not self._busy and self._jobs.empty()

    @property
    def pending(self) -> int:
        """Jobs running or waiting for a worker."""
        return len(self._busy) + self._jobs.qsize()

    def _work(self) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    return
                self._run_job(*job)
        finally:
            # Also when `stop` killed the job: a query it was waiting on has
            # already closed its connection (psycopg2 closes one whose wait is
            # interrupted); closing the others only sends a Terminate message.
            from django.db import connections

            connections.close_all()

    def _run_job(self, func: Callable[..., Any], args: tuple[Any, ...], result: AsyncResult[Any]) -> None:
        current = gevent.getcurrent()
        self._busy.add(current)
        try:
            try:
                result.set(func(*args))
            except GreenletExit as exc:  # killed by `stop`: the caller is told, the worker ends
                result.set_exception(exc)
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
                result.set_exception(exc)
                if _is_database_error(exc):
                    collect_soon()
            close_broken_connections()
            forget_queries()
        finally:
            self._busy.discard(current)

    def stop(self, timeout: float = STOP_GRACE) -> int:
        """Stop now; return how many jobs were abandoned (running or waiting).

        Waiting jobs are dropped and running ones killed (their callers get
        GreenletExit); idle workers close their database connections and
        exit. Returns within `timeout` seconds even if a killed job does not
        unwind (a method that catches GreenletExit, a database that does not
        answer): such a greenlet is left to the end of the process.
        """
        abandoned = len(self._busy)
        while True:
            try:
                job = self._jobs.get_nowait()
            except Empty:
                break
            if job is not _STOP:
                abandoned += 1
                job[2].set_exception(GreenletExit())
        for _ in self._greenlets:
            self._jobs.put(_STOP)
        gevent.killall(list(self._busy), block=False)
        gevent.joinall(self._greenlets, timeout=timeout)
        return abandoned


# Seconds after a failed connection attempt before the cyclic collector runs.
COLLECT_DELAY = 1.0
_collection: gevent.Greenlet | None = None


def collect_soon() -> None:
    """After a database error: run the cyclic collector in a moment (once, however many errors).

    A failed connection attempt's socket closes only when its psycopg2 connection
    is freed, and a frame holding that connection stays in the traceback of the
    exception Django raises, in reference cycles (Django's error wrapper re-raises
    from a frame that holds the exception) that only the cyclic collector frees,
    which an idle server may not run for minutes. While the database was down the
    server held up to 167 such sockets, 146 of them still after it came back
    (bench/attacks.py, attack 11). One collection costs about 5 ms.
    """
    global _collection
    if _collection is None:
        _collection = gevent.spawn_later(COLLECT_DELAY, _collect)


def _collect() -> None:
    global _collection
    _collection = None
    gc.collect()


def _is_database_error(exc: BaseException) -> bool:
    from django.db import DatabaseError, InterfaceError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DatabaseError | InterfaceError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def close_broken_connections() -> None:
    """Keep a worker's connection across jobs (unlike a request's), unless it broke.

    Django's `close_old_connections` would close it after every job whenever
    CONN_MAX_AGE is 0 (the default), costing a new PostgreSQL backend per call.
    """
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                connection.close()


def forget_queries() -> None:
    """Drop the queries Django logged on this greenlet's connections (with DEBUG on).

    A request's log is reset when the next request starts; the server's
    connections live as long as the process, and with DEBUG each keeps its
    last 9,000 queries, parameters included: 1 MB subscription parameters
    made that gigabytes. Called after every unit of work: with DEBUG off it does
    nothing (nothing is logged), and looks up no connection (each lookup is an
    asgiref Local's, a twentieth of the server's CPU while clients subscribe).
    """
    from django.conf import settings
    from django.db import connections

    if not settings.DEBUG:
        return
    for connection in connections.all(initialized_only=True):
        connection.queries_log.clear()
