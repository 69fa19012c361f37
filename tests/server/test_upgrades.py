"""The short way for WebSocket upgrades (dddp.server.upgrades): what it takes, and what it
leaves to pywsgi.

An upgrade it takes must be answered exactly as gevent-websocket answers it, and
the session must get what the client sent after its head; everything else must
still reach pywsgi whole (which answers, or refuses, as before). The parser and
`serve_upgrade` are tested in-process, with a socket pair; the rest against a
real server.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dddp.server.origins import OriginPolicy
from dddp.server.upgrades import parse_upgrade, serve_upgrade, switching_protocols
from dddp.server.websocket import WebSocketTransport
from tests.ddp_client import DDPClient
from tests.protocol.test_websocket import client_frame
from tests.server_process import ServerProcess

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's sample key
END = b"\r\n\r\n"


def head(request_line: str = "GET /websocket HTTP/1.1", *headers: str, key: str = KEY) -> bytes:
    fields = ["Host: x", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}"]
    fields += ["Sec-WebSocket-Version: 13", *headers]
    return "\r\n".join([request_line, *fields]).encode("latin-1")


def test_a_plain_upgrade_is_taken_with_its_headers_by_lowercase_name() -> None:
    assert parse_upgrade(head()) == (
        "/websocket",
        {
            "host": "x",
            "upgrade": "websocket",
            "connection": "Upgrade",
            "sec-websocket-key": KEY,
            "sec-websocket-version": "13",
        },
    )
    # As browsers and Node's `ws` send it: more tokens, other cases, more headers.
    browser = head(
        "GET /sockjs/123/abcdefgh/websocket HTTP/1.1",
        "Origin: http://a.example",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    )
    browser = browser.replace(b"Connection: Upgrade", b"Connection: keep-alive, upgrade")
    parsed = parse_upgrade(browser.replace(b"Upgrade: websocket", b"Upgrade: WebSocket"))
    assert parsed is not None and parsed[0] == "/sockjs/123/abcdefgh/websocket"


@pytest.mark.parametrize(
    "request_head",
    [
        head("POST /websocket HTTP/1.1"),
        head("GET /websocket HTTP/1.0"),
        head("GET /websocket?x=1 HTTP/1.1"),
        head("GET websocket HTTP/1.1"),
        head().replace(b"Version: 13", b"Version: 8"),
        head(key=""),
        head(key=base64.b64encode(b"x" * 15).decode()),
        head(key="not base64!"),
        head().replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        head().replace(b"Connection: Upgrade", b"Connection: keep-alive"),
        head().replace(b"Connection: Upgrade", b"Connection: upgrades"),
        head("GET /websocket HTTP/1.1", "Content-Length: 0"),
        head("GET /websocket HTTP/1.1", "Transfer-Encoding: chunked"),
        head("GET /websocket HTTP/1.1", "Expect: 100-continue"),
        head("GET /websocket HTTP/1.1", "Host: again"),
        head("GET /websocket HTTP/1.1", " folded"),
    ],
    ids=lambda h: h.decode("latin-1").replace("\r\n", " | ")[:90],
)
def test_anything_else_is_left_for_pywsgi(request_head: bytes) -> None:
    assert parse_upgrade(request_head) is None


def test_the_101_is_rfc_6455s_answer_to_its_sample_key() -> None:
    assert switching_protocols(KEY) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )


class FakeApp:
    """What serve_upgrade uses of the DDPServer: its endpoints, origin policy and limit."""

    def __init__(self, served: bool = True):
        self.served = served
        self.origins = OriginPolicy([])
        self.max_message_size = 1234
        self.started: list[tuple[Any, dict[str, Any], bytes]] = []

    def websocket_endpoint(self, path: str) -> Any:
        if not self.served:
            return None
        return WebSocketTransport, self.start

    def start(self, transport: Any, environ: dict[str, Any], pending: bytes) -> None:
        self.started.append((transport, environ, pending))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    client.settimeout(5)
    yield server, client
    server.close()
    client.close()


SERVER_ENVIRON = {"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}


def test_serve_upgrade_writes_the_101_and_hands_the_socket_and_what_followed_to_the_session(
    pair: tuple[socket.socket, socket.socket], settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["x"]
    server, client = pair
    app = FakeApp()
    after = b"\x81\x85first"  # a frame the client sent right after its head
    assert serve_upgrade(app, server, ("10.0.0.1", 5555), head() + END + after, SERVER_ENVIRON)
    assert client.recv(4096) == switching_protocols(KEY)
    ((transport, environ, pending),) = app.started
    assert isinstance(transport, WebSocketTransport) and pending == after
    assert transport.client_address == "10.0.0.1:5555"
    assert server.fileno() == -1  # detached: the session's now
    assert environ["PATH_INFO"] == "/websocket" and environ["HTTP_SEC_WEBSOCKET_VERSION"] == "13"
    assert (environ["REMOTE_ADDR"], environ["HTTP_HOST"]) == ("10.0.0.1", "x")
    transport._sock.close()


@pytest.mark.parametrize("case", ["not served here", "origin refused", "host refused", "head unfinished"])
def test_serve_upgrade_leaves_what_it_does_not_take_unanswered(
    pair: tuple[socket.socket, socket.socket], settings: Any, case: str
) -> None:
    settings.ALLOWED_HOSTS = ["elsewhere"] if case == "host refused" else ["x"]
    server, client = pair
    app = FakeApp(served=case != "not served here")
    request = (
        head("GET /websocket HTTP/1.1", "Origin: http://evil.example") if case == "origin refused" else head()
    )
    ending = b"\r\n" if case == "head unfinished" else END
    assert not serve_upgrade(app, server, ("10.0.0.1", 5555), request + ending, SERVER_ENVIRON)
    assert app.started == [] and server.fileno() >= 0
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(1)  # nothing written: pywsgi answers it


# --- on the wire ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(DJANGO_ALLOWED_HOSTS="127.0.0.1").wait_until_listening()


def raw_upgrade(server: ServerProcess, request: bytes) -> tuple[socket.socket, bytes, bytes]:
    """Send `request` on a new connection; the socket, the response's head, and what followed."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(request)
    received = b""
    while END not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    top, _, rest = received.partition(END)
    return sock, top + END, rest


def first_message(sock: socket.socket, rest: bytes) -> dict[str, Any]:
    """The first DDP message the server sends on an upgraded socket (`rest`: what came
    after the 101), from its first frame: text, unmasked, shorter than 64 KiB."""
    data = rest
    while True:
        if len(data) >= 2:
            assert data[0] == 0x81, data[:2]
            length, start = data[1], 2
            if length == 126 and len(data) >= 4:
                length, start = int.from_bytes(data[2:4], "big"), 4
            if length != 126 and len(data) >= start + length:
                return json.loads(data[start : start + length])  # type: ignore[no-any-return]
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk


def test_the_short_way_answers_as_pywsgi_does_and_its_session_gets_the_frames_sent_along(
    server: ServerProcess,
) -> None:
    connect = client_frame(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}).encode())
    request = head().replace(b"Host: x", f"Host: 127.0.0.1:{server.port}".encode())
    short, short_head, short_rest = raw_upgrade(server, request + END + connect)
    # A repeated header is beyond the short way: pywsgi takes it, with gevent-websocket.
    twice = b"\r\nX-Twice: 1\r\nX-Twice: 2"
    long, long_head, long_rest = raw_upgrade(server, request + twice + END + connect)
    try:
        assert short_head == long_head == switching_protocols(KEY)
        for sock, rest in ((short, short_rest), (long, long_rest)):
            message = first_message(sock, rest)
            assert message["msg"] == "connected", message
    finally:
        short.close()
        long.close()


def test_clients_connect_and_call_through_the_short_way(server: ServerProcess) -> None:
    with DDPClient(server.ws_url) as ddp:
        assert ddp.connect()["msg"] == "connected"
        assert ddp.call("add", 2, 3)["result"]["result"] == 5


@pytest.mark.parametrize(
    ("header", "status", "logged"),
    [
        ("Origin: http://evil.example", b"403 Forbidden", "Origin 'http://evil.example' is not allowed"),
        ("X-Host: (the Host below)", b"400 Bad Request", "Invalid Host header 'evil.example'"),
    ],
)
def test_a_refused_upgrade_is_still_refused_with_its_status_and_logged(
    server: ServerProcess, header: str, status: bytes, logged: str
) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    host = b"Host: evil.example" if status.startswith(b"400") else b"Host: 127.0.0.1"
    request = head("GET /websocket HTTP/1.1", header, key=key).replace(b"Host: x", host)
    start = len(server.log)
    sock, response, _rest = raw_upgrade(server, request + END)
    sock.close()
    assert response.startswith(b"HTTP/1.1 " + status + b"\r\n")
    server.wait_for_log("refused a connection from 127.0.0.1: " + logged.replace("(", r"\("), 5, start)
