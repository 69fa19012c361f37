"""The server side of one client socket (`dddp.server.websocket`)."""

from __future__ import annotations

import socket

import pytest

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


def test_a_shared_batch_is_framed_once_for_every_socket_it_goes_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """A publication's documents (dddp.server.snapshot) go to many sessions as one SharedBatch."""
    from dddp.protocol.websocket import text_frame
    from dddp.server import websocket as module
    from dddp.server.transport import SharedBatch

    framed: list[object] = []

    def joined_frames(texts: list[str]) -> bytes:
        framed.append(texts)
        return b"".join(map(text_frame, texts))

    monkeypatch.setattr(module, "_joined_frames", joined_frames)
    batch = SharedBatch(['{"msg":"added","collection":"c","id":"1"}', '{"msg":"ready","subs":["s"]}'])
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for ours, _ in pairs:
            transport = WebSocketTransport(ours.detach(), "test:1", 1 << 20)
            assert transport.write(batch) == 0
            transport._sock.close()
        expected = b"".join(map(text_frame, batch))
        assert [theirs.recv(1000) for _, theirs in pairs] == [expected] * 3
        assert framed == [batch]  # once, not once per socket
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


class Recorder:
    """A TransportUser that records what the transport tells it."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.closing: list[str] = []
        self.ended: list[str] = []

    def receive(self, text: str) -> None:
        self.texts.append(text)

    def receive_unreadable(self) -> None:
        pass

    def transport_closing(self, reason: str) -> None:
        self.closing.append(reason)

    def transport_ended(self, reason: str) -> None:
        self.ended.append(reason)

    def output_drained(self) -> None:
        pass


def test_a_client_that_closes_without_reading_what_is_pending_is_released_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 9, attack 2: the close it started used to wait for ever behind unsent output."""
    import gevent
    import websocket as websocket_client

    from dddp.server import websocket as module

    monkeypatch.setattr(module, "CLOSE_HANDSHAKE_TIMEOUT", 0.3)
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    transport = WebSocketTransport(ours.detach(), "test:1", 1 << 20)
    user = Recorder()
    transport.start(user)
    try:
        assert transport.write(["x" * 500_000]) > 0  # the client does not read it
        close = websocket_client.ABNF.create_frame(b"\x03\xe8", websocket_client.ABNF.OPCODE_CLOSE)
        theirs.sendall(close.format())
        gevent.sleep(0.1)
        assert user.closing == ["closed by the client"] and user.ended == []  # still pending
        gevent.sleep(0.4)
        assert user.ended == ["closed by the client, without reading"]
        assert transport.closed
    finally:
        transport.abort()
        theirs.close()
