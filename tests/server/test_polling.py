"""The short way for SockJS polls (dddp.server.polling): what it takes, and what it leaves to pywsgi.

A poll it takes must be answered exactly as pywsgi would have it answered;
everything else must still reach pywsgi whole. The parser is tested alone;
the rest over real sockets, against a server of this module.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from gevent import socket as gsocket

from dddp.server.polling import _DirectAnswer, parse_poll, serve_poll
from tests.server.test_sockjs_streaming import new_session, poll, read_until_closed
from tests.server_process import ServerProcess

PREFIX = b"/sockjs"


def head(request_line: str, *headers: str) -> bytes:
    return "\r\n".join([request_line, *headers]).encode("latin-1")


def test_a_plain_poll_is_taken_with_its_headers_by_lowercase_name() -> None:
    parsed = parse_poll(
        head(
            "POST /sockjs/000/abc/xhr HTTP/1.1", "Host: x", "Origin:  http://a.example ", "Content-Length: 0"
        ),
        PREFIX,
    )
    assert parsed == (
        "/sockjs/000/abc/xhr",
        "HTTP/1.1",
        {"host": "x", "origin": "http://a.example", "content-length": "0"},
    )
    assert parse_poll(head("POST /sockjs/000/abc/xhr HTTP/1.0"), PREFIX) == (
        "/sockjs/000/abc/xhr",
        "HTTP/1.0",
        {},
    )


@pytest.mark.parametrize(
    "request_head",
    [
        head("GET /sockjs/000/abc/xhr HTTP/1.1"),
        head("POST /sockjs/000/abc/xhr_send HTTP/1.1"),
        head("POST /sockjs/000/abc/xhr_streaming HTTP/1.1"),
        head("POST /sockjs/000/abc/xhr?t=1 HTTP/1.1"),
        head("POST /other/000/abc/xhr HTTP/1.1"),
        head("POST /sockjs/a./b/xhr HTTP/1.1"),
        head("POST /sockjs/000/abc/xhr HTTP/2.0"),
        head("POST  /sockjs/000/abc/xhr HTTP/1.1"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", "Content-Length: 5"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", "Transfer-Encoding: chunked"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", "Expect: 100-continue"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", "Upgrade: websocket"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", "Host: a", "host: b"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", "Host : a"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", "Host: a", " folded"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", "no colon"),
        head("POST /sockjs/000/abc/xhr HTTP/1.1", *[f"X-{n}: {n}" for n in range(101)]),
    ],
    ids=lambda h: h.decode("latin-1").replace("\r\n", " | ")[:70],
)
def test_anything_else_is_left_for_pywsgi(request_head: bytes) -> None:
    assert parse_poll(request_head, PREFIX) is None


@pytest.fixture(scope="module")
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(DDDP_SOCKJS_HEARTBEAT_DELAY="0.3").wait_until_listening()


def exchange(server: ServerProcess, data: bytes, responses: int) -> list[bytes]:
    """Send `data` on one connection; the `responses` responses it gets, each whole."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(data)
        received = b""
        answers: list[bytes] = []
        while len(answers) < responses:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {answers} and {received!r}"
            received += chunk
            while b"\r\n\r\n" in received:
                top, _, rest = received.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in top.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                if len(rest) < length:
                    break
                answers.append(top + b"\r\n\r\n" + rest[:length])
                received = rest[length:]
        return answers
    finally:
        sock.close()


def test_pipelined_polls_are_each_answered_in_order(server: ServerProcess) -> None:
    first, second = new_session(), new_session()
    requests = b"".join(
        f"POST {base}/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
        for base in (first, second)
    )
    answers = exchange(server, requests + b"GET /sockjs HTTP/1.1\r\nHost: x\r\n\r\n", 3)
    assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 3
    assert [a.rpartition(b"\r\n\r\n")[2] for a in answers] == [b"o\n", b"o\n", b"Welcome to SockJS!\n"]
    assert (
        b"\r\nDate: " in answers[0]
        and b"\r\nContent-Type: application/javascript; charset=UTF-8" in answers[0]
    )


def test_a_poll_whose_headers_do_not_fit_the_buffer_is_answered_by_pywsgi_alike(
    server: ServerProcess,
) -> None:
    base = new_session()
    big = "c=" + "x" * 20000
    (answer,) = exchange(server, f"POST {base}/xhr HTTP/1.1\r\nHost: x\r\nCookie: {big}\r\n\r\n".encode(), 1)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\no\n")
    assert poll(server, base) == "h"  # the same session, now through the short way


def test_a_chunked_poll_is_answered_by_pywsgi(server: ServerProcess) -> None:
    base = new_session()
    request = f"POST {base}/xhr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    (answer,) = exchange(server, request.encode(), 1)
    assert answer.endswith(b"\r\n\r\no\n")


def test_http_1_0_polls_close_unless_kept_alive(server: ServerProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(f"POST {new_session()}/xhr HTTP/1.0\r\n\r\n".encode())
    answer = read_until_closed(sock)  # closed by the server
    assert b"\r\nConnection: close\r\n" in answer and answer.endswith(b"o\n")
    kept = new_session()
    request = f"POST {kept}/xhr HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode()
    answers = exchange(
        server, request + f"POST {kept}/xhr HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode(), 2
    )
    assert b"\r\nConnection: keep-alive\r\n" in answers[0]
    assert [a.rpartition(b"\r\n\r\n")[2] for a in answers] == [b"o\n", b"h\n"]


class FakeHandler:
    """What serve_poll uses of pywsgi's handler: its buffered input and its socket."""

    def __init__(self, data: bytes, fail_writes: bool = False):
        self.rfile = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
        self.client_address = ("10.0.0.1", 5555)
        self.sent = b""
        self.fail_writes = fail_writes
        self.socket = self
        self.server = SimpleNamespace(environ={"SERVER_NAME": "dddp.example", "SERVER_PORT": "80"})

    def sendall(self, data: bytes) -> None:
        if self.fail_writes:
            raise BrokenPipeError
        self.sent += data


class FakeEndpoints:
    prefix = "/sockjs"

    def __init__(self) -> None:
        self.environs: list[dict[str, object]] = []
        self.closed_early = False

    def __call__(self, environ: dict[str, object], start_response: Callable[..., None]) -> Iterator[bytes]:
        self.environs.append(environ)
        start_response(
            "200 OK", [("Content-Type", "application/javascript; charset=UTF-8"), ("Content-Length", "2")]
        )
        self.body = self._body()  # held, so that only serve_poll can close it early (not the GC)
        return self.body

    def _body(self) -> Iterator[bytes]:
        try:
            yield b"o\n"
        except GeneratorExit:
            self.closed_early = True
            raise


def test_serve_poll_answers_one_request_in_one_write_and_leaves_the_next() -> None:
    handler = FakeHandler(
        b"POST /sockjs/1/s/xhr HTTP/1.1\r\nOrigin: http://a.example\r\n\r\nGET /next HTTP/1.1\r\n\r\n"
    )
    endpoints = FakeEndpoints()
    assert serve_poll(handler, endpoints, {"extra": 1}) is True  # kept alive
    (environ,) = endpoints.environs
    assert environ["PATH_INFO"] == "/sockjs/1/s/xhr" and environ["HTTP_ORIGIN"] == "http://a.example"
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["extra"]) == ("10.0.0.1", "5555", 1)
    top, _, body = handler.sent.partition(b"\r\n\r\n")
    assert top.split(b"\r\n")[0] == b"HTTP/1.1 200 OK" and body == b"o\n"
    assert not endpoints.closed_early  # the body generator ran to its end: it went out
    assert handler.rfile.read() == b"GET /next HTTP/1.1\r\n\r\n"  # left for pywsgi


def test_serve_poll_leaves_what_it_does_not_take_unread() -> None:
    data = b"POST /sockjs/1/s/xhr_send HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]"
    handler = FakeHandler(data)
    assert serve_poll(handler, FakeEndpoints(), {}) is None
    assert handler.rfile.read() == data


def test_serve_poll_closes_the_body_unfinished_when_the_write_fails() -> None:
    """So that the session learns its poll's messages went nowhere (c[1002])."""
    endpoints = FakeEndpoints()
    handler = FakeHandler(b"POST /sockjs/1/s/xhr HTTP/1.1\r\n\r\n", fail_writes=True)
    assert serve_poll(handler, endpoints, {}) is False
    assert endpoints.closed_early


def test_serve_poll_closes_when_asked() -> None:
    handler = FakeHandler(b"POST /sockjs/1/s/xhr HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert serve_poll(handler, FakeEndpoints(), {}) is False
    assert b"\r\nConnection: close\r\n" in handler.sent


def test_a_direct_answer_leaves_what_the_socket_cannot_take_to_the_polls_greenlet() -> None:
    ours, theirs = gsocket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        answer = _DirectAnswer(ours, "HTTP/1.1", keep_alive=True)
        body = b"a" * 1_000_000
        assert answer("200 OK", [("Content-Length", str(len(body)))], body) is True
        assert answer.used and not answer.failed
        assert 0 < len(answer.rest) < 1_000_000  # sent what fitted, without blocking
        assert answer.rest.endswith(body[-100:])
    finally:
        ours.close()
        theirs.close()


def test_a_direct_answer_to_a_client_gone_says_so() -> None:
    ours, theirs = gsocket.socketpair()
    theirs.close()
    try:
        answer = _DirectAnswer(ours, "HTTP/1.0", keep_alive=False)
        assert answer("200 OK", [], b"o\n") is True  # taken: the poll's greenlet ends the session
        assert answer.failed
    finally:
        ours.close()
