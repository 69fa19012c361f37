"""A few real threads for CPU-bound work, so that the event loop goes on serving.

Each job runs in one of `size` threads (DDDP_PASSWORD_HASHING_THREADS); the
greenlet that asked waits, the others run. OpenSSL's PBKDF2 (what Django's
password hashers spend their time in) releases the GIL, so the event loop
keeps its thread meanwhile. At most `size` jobs run at once, whatever the
number of logins waiting: they queue, each in its greenlet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from gevent.threadpool import ThreadPool

T = TypeVar("T")


class CPUThreads:
    def __init__(self, size: int):
        self.size = max(1, size)
        self._pool: ThreadPool | None = None  # made at first use, in the loop's own thread

    def run(self, func: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPool(self.size)
        return self._pool.apply(func, args)  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.kill()
            self._pool = None
