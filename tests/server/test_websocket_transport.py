"""The server side of one client socket (`dddp.server.websocket`)."""

from __future__ import annotations

import socket

from dddp.server.websocket import WebSocketTransport


def test_small_messages_are_not_held_back_by_nagles_algorithm() -> None:
    """TCP_NODELAY: a `ready` after a burst of documents goes out at once.

    With Nagle's algorithm the small last write waits for the client to ACK
    the burst, and clients delay ACKs by up to 40 ms (the live-data benchmark
    measured exactly that on every 10,000-row subscription).
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        transport = WebSocketTransport(accepted.detach(), "127.0.0.1:1", 1 << 20)
        try:
            assert transport._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            transport._sock.close()
            client.close()
