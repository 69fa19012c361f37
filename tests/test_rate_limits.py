"""dddp.rate_limits: Meteor's DDPRateLimiter rules, counted in fixed windows."""

from __future__ import annotations

import pytest

from dddp.rate_limits import FixedWindowCounts, RateLimiter, Request, Rule, too_many_requests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(
    name: str = "add_book", user_id: object = 1, connection_id: str = "c1", kind: str = "method"
) -> Request:
    return Request(kind, name, user_id, connection_id, "127.0.0.1")


def test_the_error_is_meteors_too_many_requests_with_the_time_to_wait() -> None:
    error = too_many_requests(2.3)
    assert error.error == "too-many-requests"
    assert error.reason == (
        "Error, too many requests. Please slow down. You must wait 3 seconds before trying again."
    )
    assert error.details == {"timeToReset": 2300}


def test_a_rule_allows_its_requests_per_window_then_refuses_until_the_window_ends() -> None:
    clock = Clock()
    limiter = RateLimiter([Rule(requests=2, interval=10.0, clock=clock, name="add_book")])
    assert limiter.check(call()) is None
    assert limiter.check(call()) is None
    clock.now += 4
    refused = limiter.check(call())
    assert refused is not None and refused.details == {"timeToReset": 6000}
    clock.now += 6  # a new window: every count starts again
    assert limiter.check(call()) is None


def test_a_rule_counts_apart_for_each_value_it_names_with_true() -> None:
    clock = Clock()
    limiter = RateLimiter([Rule(requests=1, interval=10.0, clock=clock, connection_id=True)])
    assert limiter.check(call(connection_id="a")) is None
    assert limiter.check(call(connection_id="b")) is None  # another connection, its own count
    assert limiter.check(call(connection_id="a")) is not None


def test_a_rule_without_a_key_counts_every_matching_request_together() -> None:
    limiter = RateLimiter([Rule(requests=1, interval=10.0, type="subscription")])
    assert limiter.check(call(kind="subscription", connection_id="a")) is None
    assert limiter.check(call(kind="subscription", connection_id="b")) is not None
    assert limiter.check(call(kind="method")) is None  # not matched: not counted


def test_a_value_must_equal_and_a_function_must_accept() -> None:
    limiter = RateLimiter(
        [Rule(requests=0, interval=10.0, name=lambda name: name.startswith("admin."), user_id=7)]
    )
    assert limiter.check(call("admin.purge", user_id=7)) is not None
    assert limiter.check(call("admin.purge", user_id=8)) is None
    assert limiter.check(call("add_book", user_id=7)) is None


def test_a_request_over_two_rules_waits_for_the_later_window() -> None:
    clock = Clock()
    limiter = RateLimiter(
        [Rule(requests=0, interval=2.0, clock=clock), Rule(requests=0, interval=30.0, clock=clock)]
    )
    refused = limiter.check(call())
    assert refused is not None and refused.details == {"timeToReset": 30000}


def test_counts_kept_are_only_those_of_the_current_window() -> None:
    clock = Clock()
    counts = FixedWindowCounts(1, 1.0, clock)
    for connection in range(1000):
        counts.count(connection)
    clock.now += 1
    counts.count("new")
    assert len(counts._counts) == 1


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"requests": 1, "interval": 1, "method": "x"}, "not method"),
        ({"requests": -1, "interval": 1}, "whole number"),
        ({"requests": 1, "interval": 0}, "positive number"),
        ({"interval": 1}, "requests"),
    ],
)
def test_a_malformed_rule_says_what_is_wrong(rule: dict, problem: str) -> None:
    with pytest.raises((TypeError, ValueError), match=problem):
        Rule(**rule)


def test_the_system_check_reports_a_malformed_rate_limit(settings: pytest.FixtureRequest) -> None:
    from dddp.checks import check_dddp_settings

    settings.DDDP_RATE_LIMITS = [{"type": "method", "requests": 1}]  # type: ignore[attr-defined]
    [error] = [message for message in check_dddp_settings() if "RATE_LIMITS" in message.msg]
    assert error.id == "dddp.E002" and "interval" in error.msg
