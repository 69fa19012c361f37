"""A failure repeated by a client is logged once per interval, with a count (issue 9, attack 8)."""

from __future__ import annotations

from dddp.log_throttle import MAX_KINDS, LogThrottle, first_line, left_out, quote


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_of_a_kind_is_logged_the_rest_counted_until_the_interval_is_over() -> None:
    clock = Clock()
    throttle = LogThrottle(interval=10, clock=clock)
    assert throttle.allow("a") == 0
    assert [throttle.allow("a") for _ in range(5)] == [None] * 5
    assert throttle.allow("b") == 0  # another kind is not held back
    clock.now += 10
    assert throttle.allow("a") == 5  # logged again, saying how many were left out
    assert throttle.allow("a") is None


def test_the_kinds_remembered_are_bounded() -> None:
    throttle = LogThrottle(interval=10, clock=Clock())
    for n in range(MAX_KINDS + 50):
        assert throttle.allow(n) == 0
    assert len(throttle._kinds) == MAX_KINDS
    assert throttle.allow(0) == 0  # the oldest was forgotten: logged again


def test_quoted_client_input_is_cut() -> None:
    assert quote("x" * 10) == repr("x" * 10)
    cut = quote("x" * 10_000)
    assert len(cut) < 250 and cut.endswith("... (10002 characters)")
    assert left_out(0) == "" and left_out(3) == " (3 more like it in the last 10s not logged)"


def test_an_exceptions_first_line_is_what_a_log_line_says_of_it() -> None:
    assert first_line(OSError("could not connect\nDETAIL: more\n")) == "could not connect"
    assert first_line(ValueError()) == "ValueError"
    assert len(first_line(ValueError("x" * 1000))) == 200
