"""Logging a repeated failure once per interval, with how many were left out.

A client can make the same failure happen thousands of times a second (a
method that raises, a message that cannot be handled): logged each time,
with a traceback, that fills disks and drowns every other line. The first
of a kind is logged at once; the same kind again within the interval is
only counted, and the next line logged for it says how many were left out.
Importable by the Django side and the server alike (no gevent).
"""

from __future__ import annotations

import time
from collections.abc import Hashable

#: Seconds between two lines about the same kind of failure.
INTERVAL = 10.0
#: Kinds remembered at once: past this, the oldest are forgotten (a client making
#: up new kinds must not grow the memory either).
MAX_KINDS = 1000

#: What a log line quotes of client input, at most.
QUOTE_LIMIT = 200


class LogThrottle:
    def __init__(self, interval: float = INTERVAL, clock: object = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._kinds: dict[Hashable, tuple[float, int]] = {}  # kind -> (last logged, left out since)

    def allow(self, kind: Hashable) -> int | None:
        """None: do not log this one. Else log it, saying the number left out since the last."""
        now = self._clock()  # type: ignore[operator]
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._kinds) >= MAX_KINDS:
            del self._kinds[next(iter(self._kinds))]
        self._kinds.pop(kind, None)
        self._kinds[kind] = (now, 0)
        return last[1] if last is not None else 0


def left_out(count: int) -> str:
    """The suffix of a log line after `count` lines like it were left out."""
    return f" ({count} more like it in the last {INTERVAL:g}s not logged)" if count else ""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)`, cut to `limit` characters: client input in a log line is bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def first_line(exc: BaseException, limit: int = QUOTE_LIMIT) -> str:
    """An exception's first line, cut to `limit`: enough for a log line about it."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
