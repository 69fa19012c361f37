"""A fixed pool of greenlets that run Django code (methods, queries) for sessions.

Django keeps one database connection per thread, and under gevent a greenlet is
a thread: running Django code in each client's own greenlet would open one
PostgreSQL connection per client. Sessions hand their calls to this pool
instead, so a server process holds at most `size` connections, whatever the
number of clients, and reuses them from call to call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.queue import Queue

logger = logging.getLogger("dddp.server")

_STOP = object()


class WorkerPool:
    """Runs callables on `size` long-lived greenlets; `run` waits for the result."""

    def __init__(self, size: int):
        self.size = size
        self._jobs: Queue[Any] = Queue()
        self._busy = 0
        self._greenlets = [gevent.spawn(self._work) for _ in range(size)]

    def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run `func(*args)` on a worker; return its value or raise its exception."""
        result: AsyncResult[Any] = AsyncResult()
        self._jobs.put((func, args, result))
        return result.get()

    @property
    def idle(self) -> bool:
        return self._busy == 0 and self._jobs.empty()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                break
            func, args, result = job
            self._busy += 1
            try:
                result.set(func(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
                result.set_exception(exc)
            finally:
                close_broken_connections()
                self._busy -= 1
        from django.db import connections

        connections.close_all()

    def stop(self) -> None:
        """Let each worker finish its job, close its connections and exit."""
        for _ in self._greenlets:
            self._jobs.put(_STOP)
        gevent.joinall(self._greenlets, timeout=5)


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
