"""Rate limits on methods and subscriptions, as Meteor's DDPRateLimiter counts them.

A rule matches requests by any of `type` ("method" or "subscription"),
`name`, `user_id`, `connection_id` and `client_address`. Each one the rule
names is a value the request's must equal, a function of it that must return
true, or True for any; and the rule counts separately for each combination
of the values it names (naming `connection_id=True` counts per connection). A
rule allows `requests` in each window of `interval` seconds; the windows are
Meteor's, fixed: every count of a rule starts again `interval` seconds after
the last start. One request past a count is refused with Meteor's
`too-many-requests` error, saying how long to wait (`timeToReset`, in ms).

Counts live in the server process: with several processes behind a load
balancer, each counts what it serves.

From settings, `DDDP_RATE_LIMITS` is a list of rules as dicts::

    DDDP_RATE_LIMITS = [
        {"type": "method", "name": "add_book", "user_id": True, "requests": 10, "interval": 1.0},
        {"type": "subscription", "connection_id": True, "requests": 100, "interval": 10.0},
    ]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dddp.protocol.errors import MeteorError

MATCHED = ("type", "name", "user_id", "connection_id", "client_address")


@dataclass(frozen=True)
class Request:
    """What a rule may match of a method call or a subscription."""

    type: str
    name: str
    user_id: Any
    connection_id: str
    client_address: str


def too_many_requests(time_to_reset: float) -> MeteorError:
    """Meteor's error for a request over a limit; `time_to_reset` in seconds."""
    milliseconds = max(0, math.ceil(time_to_reset * 1000))
    return MeteorError(
        "too-many-requests",
        "Error, too many requests. Please slow down. You must wait "
        f"{math.ceil(milliseconds / 1000)} seconds before trying again.",
        {"timeToReset": milliseconds},
    )


class FixedWindowCounts:
    """Counts by key in fixed windows of `interval` seconds (Meteor's RateLimiter rule)."""

    def __init__(self, requests: int, interval: float, clock: Callable[[], float] = time.monotonic):
        self.requests = requests
        self.interval = interval
        self._clock = clock
        self._started = clock()
        self._counts: dict[Any, int] = {}

    def _window(self) -> float:
        now = self._clock()
        if now - self._started >= self.interval:
            self._started = now
            self._counts.clear()  # every key starts again: what is kept is bounded by one window
        return now

    def count(self, key: Any) -> float | None:
        """Count one request for `key`; seconds until the window ends when it is over the limit."""
        now = self._window()
        self._counts[key] = self._counts.get(key, 0) + 1
        if self._counts[key] > self.requests:
            return self.interval - (now - self._started)
        return None

    def over(self, key: Any) -> float | None:
        """Whether `key` is over the limit already (without counting): seconds left, or None."""
        now = self._window()
        if self._counts.get(key, 0) >= self.requests:
            return self.interval - (now - self._started)
        return None


class Rule:
    def __init__(
        self, requests: int, interval: float, clock: Callable[[], float] = time.monotonic, **match: Any
    ):
        unknown = set(match) - set(MATCHED)
        if unknown:
            raise ValueError(f"a rate limit matches {', '.join(MATCHED)}; not {', '.join(sorted(unknown))}")
        if not isinstance(requests, int) or isinstance(requests, bool) or requests < 0:
            raise ValueError(f"a rate limit's requests must be a whole number, got {requests!r}")
        if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
            raise ValueError(
                f"a rate limit's interval must be a positive number of seconds, got {interval!r}"
            )
        self.match = {name: value for name, value in match.items() if value is not None}
        self.counts = FixedWindowCounts(requests, interval, clock)

    def matches(self, request: Request) -> bool:
        for name, wanted in self.match.items():
            value = getattr(request, name)
            if wanted is True:
                continue
            if callable(wanted):
                if not wanted(value):
                    return False
            elif wanted != value:
                return False
        return True

    def key(self, request: Request) -> tuple[Any, ...]:
        return tuple(repr(getattr(request, name)) for name in self.match)


class RateLimiter:
    """The rules of a server process; `check` counts a request and refuses it over any limit."""

    def __init__(self, rules: Iterable[Rule] = ()):
        self.rules = list(rules)

    @classmethod
    def from_settings(cls, declared: Iterable[dict[str, Any]]) -> RateLimiter:
        return cls(Rule(**rule) for rule in declared)

    def check(self, request: Request) -> MeteorError | None:
        """Count the request with every rule it matches (as Meteor does, even one refused):
        the error to answer when it is over one of them, else None."""
        wait: float | None = None
        for rule in self.rules:
            if rule.matches(request):
                left = rule.counts.count(rule.key(request))
                if left is not None:
                    wait = left if wait is None else max(wait, left)
        return None if wait is None else too_many_requests(wait)
