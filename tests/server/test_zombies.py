"""Zombie sessions (issue 9, attack 2): a client that makes the server queue replies, sends
its close frame and stops reading is not read any more once 1 MiB waits for it, and is
released by the heartbeat (its close, sent behind its unread pings, is never seen); a
client that closes while less waits is released by the close timeout
(tests/server/test_websocket_transport.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import websocket

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def quick_heartbeat_server(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(
        DDDP_HEARTBEAT_INTERVAL="0.5", DDDP_HEARTBEAT_TIMEOUT="1"
    ).wait_until_listening()


def test_a_client_that_queues_replies_and_never_reads_is_released_by_the_heartbeat(
    quick_heartbeat_server: ServerProcess,
) -> None:
    server = quick_heartbeat_server
    client = DDPClient(server.ws_url)
    try:
        client.connect()
        session = client.session
        ping = json.dumps({"msg": "ping", "id": "p" * 400_000})
        data = (
            b"".join(
                websocket.ABNF.create_frame(ping, websocket.ABNF.OPCODE_TEXT).format() for _ in range(30)
            )
            + websocket.ABNF.create_frame(b"\x03\xe8", websocket.ABNF.OPCODE_CLOSE).format()
        )
        sock = client.ws.sock
        sock.settimeout(0.2)
        sent, started = 0, time.monotonic()
        while sent < len(data) and time.monotonic() - started < 3:  # 12 MB of pongs to come; never read
            try:
                sent += sock.send(data[sent : sent + 65536])
            except TimeoutError:
                pass
            except OSError:  # dropped already
                break
        line = server.wait_for_log(
            rf"connection \d+ closed after [\d.]+s \(session {session}\): (.*)", timeout=6
        )
        assert line.group(1) == "heartbeat timed out"
        assert sent < len(data), "the server read everything: it did not stop reading"
    finally:
        client.ws.sock.close()
