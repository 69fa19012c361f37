"""A connection's first request head is waited for without a greenlet (dddp.server.first_heads).

In process, on gevent's loop, over socket pairs: one end is the accepted connection
given to `FirstHeads`, the other the client. (tests/server/test_timeouts.py drives
the same through a real server.)
"""

from __future__ import annotations

import gc
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import gevent
import greenlet
import pytest
from gevent import socket as gsocket
from gevent.event import Event

from dddp.server import first_heads
from dddp.server.first_heads import HEAD_LIMIT, FirstHeads, head_first_file
from dddp.server.http_server import HTTPServer

HEAD = b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n"


class Heads:
    """A FirstHeads whose hand-overs are recorded: (server socket, address, head, opened)."""

    def __init__(self, timeout: float = 5.0):
        self.handed: list[tuple[Any, Any, bytes, float]] = []
        self.arrived = Event()
        self.heads = FirstHeads(gevent.get_hub().loop, timeout, self._handover)
        self.clients: list[socket.socket] = []

    def _handover(self, sock: Any, address: Any, head: bytes, opened: float) -> None:
        self.handed.append((sock, address, head, opened))
        self.arrived.set()

    def connect(self) -> gsocket.socket:
        """A client socket whose other end the FirstHeads waits on."""
        server_end, client_end = gsocket.socketpair()
        self.heads.wait(server_end, ("127.0.0.1", 1234))
        self.clients.append(client_end)
        return client_end

    def wait_for_handover(self, timeout: float = 2.0) -> tuple[Any, Any, bytes, float]:
        assert self.arrived.wait(timeout), "nothing handed over"
        self.arrived.clear()
        return self.handed[-1]


@pytest.fixture
def heads() -> Iterator[Heads]:
    waiting = Heads()
    yield waiting
    waiting.heads.close()
    for client in waiting.clients:
        client.close()
    for sock, *_ in waiting.handed:
        sock.close()


def closed_by_server(client: gsocket.socket, timeout: float = 2.0) -> bool:
    client.settimeout(timeout)
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_head_sent_in_pieces_is_handed_over_once_its_empty_line_is_in(heads: Heads) -> None:
    client = heads.connect()
    before = time.monotonic()
    for piece in (HEAD[:5], HEAD[5:20], HEAD[20:-1]):
        client.sendall(piece)
        gevent.sleep(0.02)
        assert heads.handed == []
    client.sendall(HEAD[-1:] + b"body")
    _sock, address, head, opened = heads.wait_for_handover()
    assert head == HEAD + b"body"  # whatever came with the head goes with it
    assert address == ("127.0.0.1", 1234)
    assert opened <= before  # the head's deadline counts from the opening
    assert len(heads.heads) == 0


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare line feeds, which pywsgi accepts too
        b"GET /\r\n",  # HTTP/0.9: no headers follow
        b"NONSENSE\r\n",  # pywsgi answers it with a 400 at once
    ],
    ids=["bare-line-feeds", "http-0.9", "garbage-request-line"],
)
def test_heads_that_end_otherwise_are_handed_over_at_once(heads: Heads, head: bytes) -> None:
    heads.connect().sendall(head)
    assert heads.wait_for_handover()[2] == head


def test_a_head_over_the_limit_is_handed_over_for_pywsgi_to_judge(heads: Heads) -> None:
    client = heads.connect()
    client.sendall(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * (HEAD_LIMIT + 100))
    assert len(heads.wait_for_handover()[2]) == HEAD_LIMIT


def test_a_client_that_stops_sending_mid_head_is_handed_over_with_what_it_sent(heads: Heads) -> None:
    client = heads.connect()
    client.sendall(b"GET / HTTP/1.0\r\n")
    client.shutdown(socket.SHUT_WR)
    assert heads.wait_for_handover()[2] == b"GET / HTTP/1.0\r\n"


def test_a_client_that_closes_before_sending_anything_is_closed_and_not_handed_over(
    heads: Heads,
) -> None:
    heads.connect().close()
    gevent.sleep(0.05)
    marker = heads.connect()
    marker.sendall(HEAD)
    heads.wait_for_handover()
    assert len(heads.handed) == 1 and len(heads.heads) == 0


def test_late_heads_are_closed_at_the_timeout_and_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(first_heads, "late_heads", first_heads.LogThrottle())
    waiting = Heads(timeout=0.3)
    partial = [waiting.connect() for _ in range(20)]
    for client in partial:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    silent = waiting.connect()
    caplog.set_level(logging.INFO, "dddp.server.http")
    started = time.monotonic()
    try:
        assert all(closed_by_server(client) for client in [*partial, silent])
        assert 0.25 < time.monotonic() - started < 1.0
        lines = [r.getMessage() for r in caplog.records if "no whole request head" in r.getMessage()]
        assert len(lines) == 1
        assert lines[0].startswith("closed a connection from 127.0.0.1: no whole request head within 0.3s")
        assert waiting.handed == [] and len(waiting.heads) == 0
    finally:
        for client in waiting.clients:
            client.close()


def test_a_connection_that_sent_nothing_is_closed_at_the_timeout_without_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waiting = Heads(timeout=0.2)
    client = waiting.connect()
    caplog.set_level(logging.INFO, "dddp.server.http")
    try:
        assert closed_by_server(client)
        assert not [r for r in caplog.records if "request head" in r.getMessage()]
    finally:
        client.close()


def test_each_connection_gets_its_own_deadline_from_its_opening() -> None:
    waiting = Heads(timeout=0.4)
    first = waiting.connect()
    gevent.sleep(0.25)
    second = waiting.connect()
    try:
        assert closed_by_server(first, timeout=0.3)  # at 0.4 s of its own
        second.sendall(HEAD)  # 0.15 s left of its own: in time
        assert waiting.wait_for_handover(timeout=1.0)[2] == HEAD
    finally:
        waiting.heads.close()
        for client in waiting.clients:
            client.close()
        waiting.handed[0][0].close()


def test_closing_closes_every_connection_still_waiting(heads: Heads) -> None:
    clients = [heads.connect() for _ in range(3)]
    clients[0].sendall(b"GET / HT")
    gevent.sleep(0.02)
    heads.heads.close()
    assert all(closed_by_server(client) for client in clients)
    assert len(heads.heads) == 0


def test_the_server_starts_no_greenlet_for_a_connection_until_its_head_is_in() -> None:
    def greenlets() -> int:
        gc.collect()
        # type(), not isinstance(): the latter would set up lazy objects (Django's) it meets
        return sum(issubclass(type(thing), greenlet.greenlet) for thing in gc.get_objects())

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = HTTPServer(("127.0.0.1", 0), app, request_head_timeout=5.0, request_body_timeout=5.0, log=None)
    server.start()
    clients = []
    try:
        before = greenlets()
        for _ in range(50):
            client = gsocket.create_connection(server.address, timeout=5)
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            clients.append(client)
        gevent.sleep(0.1)
        assert server._first_heads is not None and len(server._first_heads) == 50
        assert greenlets() - before < 5  # not one each
        clients[0].sendall(b"\r\n")  # its head is in: it is served
        assert clients[0].recv(4096).startswith(b"HTTP/1.1 200 OK")
    finally:
        server.close()
        for client in clients:
            client.close()
    assert len(server._first_heads) == 0


# --- the handler's input -----------------------------------------------------------------


def test_the_handlers_file_reads_the_head_first_then_the_socket() -> None:
    server_end, client_end = gsocket.socketpair()
    with server_end, client_end:
        rfile = head_first_file(server_end, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nfirst")
        client_end.sendall(b" then more")
        assert rfile.readline() == b"GET / HTTP/1.1\r\n"
        assert rfile.readline() == b"Host: x\r\n"
        assert rfile.readline() == b"\r\n"
        assert rfile.read(5) == b"first"
        assert rfile.read(10) == b" then more"
        rfile.close()


def test_what_follows_a_long_head_is_in_the_handlers_buffer_at_once() -> None:
    """A WebSocket's first messages, sent with its upgrade, are taken from the buffer."""
    start, end = b"GET /websocket HTTP/1.1\r\nCookie: ", b"\r\n\r\n"
    # 3 bytes short of three 8 KiB reads: a file buffering 8 KiB would hold "con" only.
    head = start + b"c" * (3 * 8192 - 3 - len(start) - len(end)) + end
    server_end, client_end = gsocket.socketpair()
    with server_end, client_end:
        rfile = head_first_file(server_end, head + b"connect")
        assert rfile.readline().startswith(b"GET ")
        rfile.readline()
        rfile.readline()
        assert bytes(rfile.peek(65536)) == b"connect"
        rfile.close()
