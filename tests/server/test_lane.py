"""The large-message lane: big client messages take turns, small ones never wait behind them.

In process, real Sessions on test_session's fake transport.
"""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import pytest

from dddp.server.lane import LARGE_MESSAGE, lane
from tests.server.test_session import FakeTransport, connected


def big_ping(name: str) -> dict[str, str]:
    return {"msg": "ping", "id": name + "." * LARGE_MESSAGE}


def pongs(transport: FakeTransport) -> list[str]:
    return [message["id"].rstrip(".") for message in transport.received() if message["msg"] == "pong"]


@pytest.fixture(autouse=True)
def idle_lane() -> Iterator[None]:
    """Each test starts and ends with the lane's worker gone (other modules use the lane too)."""
    while lane._worker is not None:
        gevent.sleep(0.001)
    yield
    while lane._worker is not None:
        gevent.sleep(0.001)


def test_a_big_message_waits_its_turn_and_what_came_after_it_waits_behind_it() -> None:
    transport = FakeTransport()
    connected(transport)
    transport.client_sends(big_ping("big"))
    transport.client_sends({"msg": "ping", "id": "small"})  # read along with it
    assert not transport.reading  # nothing more is read meanwhile
    assert pongs(transport) == []  # not handled in the transport's callback
    while lane._worker is not None:
        gevent.sleep(0.001)
    assert pongs(transport) == ["big", "small"]  # in order (D-84)
    assert transport.reading


def test_small_messages_of_other_clients_do_not_wait_behind_big_ones() -> None:
    flooder, other = FakeTransport(), FakeTransport()
    connected(flooder)
    connected(other)
    for number in range(3):
        flooder.client_sends(big_ping(str(number)))
    other.client_sends({"msg": "ping", "id": "small"})
    assert pongs(other) == ["small"]  # at once
    assert pongs(flooder) == []
    # What the loop does next (a timer, as a socket's readiness would be) comes after
    # one big message, not after all of them.
    handled_by_then: list[int] = []
    gevent.spawn_later(0, lambda: handled_by_then.append(len(flooder.writes)))
    while len(lane) or not handled_by_then:
        gevent.sleep(0.001)
    assert handled_by_then == [1]
    assert pongs(flooder) == ["0", "1", "2"]


def test_big_messages_of_several_clients_take_turns() -> None:
    first, second = FakeTransport(), FakeTransport()
    connected(first)
    connected(second)
    order: list[str] = []
    for transport in (first, second):
        transport.client_sends(big_ping("a"))
        transport.client_sends(big_ping("b"))
    while len(lane) or not order:
        gevent.sleep(0)
        order += [f"first {id}" for id in pongs(first)] + [f"second {id}" for id in pongs(second)]
    assert order == ["first a", "second a", "first b", "second b"]
