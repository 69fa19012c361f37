"""Zombie sessions (issue 9, attack 2): a client that queues replies, sends its close frame
and stops reading is released within the close timeout, whichever side closes."""

from __future__ import annotations

import json

import websocket

from dddp.server.websocket import CLOSE_HANDSHAKE_TIMEOUT
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess


def test_a_client_that_closes_and_stops_reading_is_released_within_the_close_timeout(
    server: ServerProcess,
) -> None:
    client = DDPClient(server.ws_url)
    try:
        client.connect()
        session = client.session
        ping = json.dumps({"msg": "ping", "id": "p" * 400_000})
        frames = [websocket.ABNF.create_frame(ping, websocket.ABNF.OPCODE_TEXT).format() for _ in range(30)]
        close = websocket.ABNF.create_frame(b"\x03\xe8", websocket.ABNF.OPCODE_CLOSE).format()
        sock = client.ws.sock
        sock.setblocking(True)
        sock.sendall(b"".join(frames) + close)  # 12 MB of pongs to come, then the close; never read
        line = server.wait_for_log(
            rf"connection \d+ closed after ([\d.]+)s \(session {session}\): (.*)",
            timeout=CLOSE_HANDSHAKE_TIMEOUT + 5,
        )
        assert line.group(2) == "closed by the client"
        assert float(line.group(1)) < CLOSE_HANDSHAKE_TIMEOUT + 2
    finally:
        client.ws.sock.close()
