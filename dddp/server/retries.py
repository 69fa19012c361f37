"""Retrying a step that lost its database connection, on a new one, with backoff."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent

from dddp.log_throttle import LogThrottle, first_line, left_out
from dddp.server.workers import close_broken_connections, collect_soon

logger = logging.getLogger("dddp.server")

_retries_logged = LogThrottle()


def retrying_first_read(read: Callable[..., Any], *args: Any) -> Any:
    """A new subscription's first read retries a lost connection only for a moment (0.7 s, so
    that a fresh client is answered within a second): its subscriber waits meanwhile, and
    while the database is down it is better told
    (nosub 503 "Database unavailable, retry") than kept waiting for the minute that an
    observer already serving clients keeps trying for."""
    return retrying_lost_connections(read, *args, attempts=4)


def retrying_lost_connections(func: Callable[..., Any], *args: Any, attempts: int = 15) -> Any:
    """`func(*args)`, tried again on a new connection while PostgreSQL is unreachable (up
    to about a minute with the default `attempts`)."""
    from django.db import InterfaceError, OperationalError

    delay = 0.1
    for attempt in range(attempts):
        try:
            return func(*args)
        except (OperationalError, InterfaceError) as exc:
            close_broken_connections()
            collect_soon()
            if attempt == attempts - 1:
                raise
            count = _retries_logged.allow("database unavailable")  # one line per interval
            if count is not None:
                logger.warning(
                    "database unavailable (%s); retrying in %.1fs%s", first_line(exc), delay, left_out(count)
                )
            gevent.sleep(delay)
            delay = min(delay * 2, 5.0)
