"""Server-initiated heartbeats (D-22), with intervals shortened by settings."""

from __future__ import annotations

import time
from collections import deque

import pytest
import websocket

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def fast_heartbeat_server(start_server) -> ServerProcess:  # type: ignore[no-untyped-def]
    return start_server(DDDP_HEARTBEAT_INTERVAL="0.3", DDDP_HEARTBEAT_TIMEOUT="0.6").wait_until_listening()


def test_idle_client_is_pinged_without_an_id(fast_heartbeat_server: ServerProcess) -> None:
    with DDPClient(fast_heartbeat_server.ws_url) as ddp:
        ddp.connect()
        assert ddp.recv(timeout=2) == {"msg": "ping"}


def test_client_that_answers_pings_stays_connected(fast_heartbeat_server: ServerProcess) -> None:
    with DDPClient(fast_heartbeat_server.ws_url) as ddp:
        ddp.connect()
        deadline = time.monotonic() + 2.0  # more than three timeouts
        pings = 0
        while time.monotonic() < deadline:
            assert ddp.recv(timeout=2) == {"msg": "ping"}
            ddp.send({"msg": "pong"})
            pings += 1
        assert pings >= 2
        assert ddp.call("add", 1, 1)["result"]["result"] == 2


def test_silent_client_is_disconnected_after_the_timeout(fast_heartbeat_server: ServerProcess) -> None:
    start = len(fast_heartbeat_server.log)
    with DDPClient(fast_heartbeat_server.ws_url) as ddp:
        session = ddp.connect()["session"]
        assert ddp.recv(timeout=2) == {"msg": "ping"}
        ddp.ws.settimeout(3)
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                if not ddp.ws.recv():
                    raise websocket.WebSocketConnectionClosedException("closed")
    fast_heartbeat_server.wait_for_log(
        rf"closed after .*\(session {session}\): heartbeat timed out", start=start
    )


def test_pre1_client_is_never_pinged(fast_heartbeat_server: ServerProcess) -> None:
    """D-16."""
    with DDPClient(fast_heartbeat_server.ws_url) as ddp:
        ddp.connect("pre1", ["pre1"])
        ddp.assert_silent(1.0)


class CountedSession:
    checked: list[int] = []

    def check_heartbeat(self, now: float) -> None:
        CountedSession.checked.append(1)


def test_the_ticker_lets_the_server_run_between_slices_of_its_sessions() -> None:
    """Its pass over 10,000 sessions took 30 ms: a batch of changes waited that long."""
    import gevent

    from dddp.server.app import TICK_SLICE, DDPServer

    server = DDPServer.__new__(DDPServer)
    server.sessions = {CountedSession() for _ in range(TICK_SLICE * 4)}  # type: ignore[misc]
    server._connecting = deque()
    server.connect_timeout, server.heartbeat_interval, server.heartbeat_timeout = 0.04, 0.04, 0.04
    CountedSession.checked = []
    seen_mid_pass: list[int] = []
    ticker = gevent.spawn(server._tick_heartbeats)
    try:
        while not CountedSession.checked:
            gevent.sleep(0)  # runnable again at the ticker's first yield
        seen_mid_pass.append(len(CountedSession.checked))  # what had been checked when we ran
    finally:
        ticker.kill()
    assert 0 < seen_mid_pass[0] < TICK_SLICE * 4
