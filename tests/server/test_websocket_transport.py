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


def test_the_frame_cache_frames_a_shared_text_once_and_keeps_no_large_text() -> None:
    from dddp.server import websocket as module

    module._frames.clear()
    shared = "x" * 100
    assert module.frame_of(shared) is module.frame_of(shared)  # one frame for every session
    big = "y" * (2 << 20)
    assert module.frame_of(big) == module.frame_of(big)
    assert module._frames.get(id(big)) is None  # made, not kept
    for _ in range(100):  # many medium texts: the cache stays within its bytes
        module.frame_of("z" * 200_000)
        assert module._frames.bytes <= module._frames.max_bytes
