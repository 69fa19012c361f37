"""SockJS's streaming transports, interrupted requests, the per-address limit and HTTP/1.0.

Over real sockets, against a server whose SockJS heartbeat delay is 0.3 s,
disconnect delay 0.8 s and streaming response limit 4096 bytes (the
sockjs-protocol suite's); the per-address limit has a server of its own. Item ids are
docs/ddp-protocol.md's.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Callable

import pytest

from tests.server.test_sockjs import CONNECT, request
from tests.server_process import ServerProcess

XHR_PRELUDE = "h" * 2048 + "\n"
LIMIT = 4096


@pytest.fixture(scope="module")
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(
        DDDP_SOCKJS_HEARTBEAT_DELAY="0.3",
        DDDP_SOCKJS_DISCONNECT_DELAY="0.8",
        DDDP_SOCKJS_RESPONSE_LIMIT=str(LIMIT),
        DDDP_ALLOWED_ORIGINS="http://app.example:3000",  # a Meteor app served from elsewhere
    ).wait_until_listening()


@pytest.fixture(scope="module")
def limited_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(
        DDDP_SOCKJS_DISCONNECT_DELAY="0.8", DDDP_SOCKJS_MAX_SESSIONS_PER_ADDRESS="5"
    ).wait_until_listening()


def new_session() -> str:
    return f"/sockjs/000/{uuid.uuid4().hex[:8]}"


class Stream:
    """One streaming receiving request, read a line at a time."""

    def __init__(self, server: ServerProcess, method: str, path: str, headers: dict[str, str] | None = None):
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        self.connection.request(method, path, headers=headers or {})
        self.response = self.connection.getresponse()
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}

    def line(self, terminator: bytes = b"\n") -> str:
        data = b""
        while not data.endswith(terminator):
            chunk = self.response.read(1)
            if not chunk:
                raise EOFError(f"the response ended after {data!r}")
            data += chunk
        return data.decode()

    def rest(self) -> str:
        """Everything until the server ends the response."""
        return self.response.read().decode()

    def close(self) -> None:
        self.connection.close()


def send(server: ServerProcess, base: str, *texts: str) -> None:
    assert request(server, "POST", base + "/xhr_send", json.dumps(list(texts)))[0] == 204


def ddp(frame: str) -> list[dict[str, object]]:
    assert frame.startswith("a"), frame
    return [json.loads(text) for text in json.loads(frame[1:])]


def pongs(frames: list[str]) -> list[object]:
    return [m["id"] for frame in frames if frame.startswith("a") for m in ddp(frame) if m["msg"] == "pong"]


# --- xhr-streaming ------------------------------------------------------------------------


def test_xhr_streaming_preflight(server: ServerProcess) -> None:
    status, headers, _ = request(
        server,
        "OPTIONS",
        new_session() + "/xhr_streaming",
        headers={"Origin": "http://app.example:3000", "Access-Control-Request-Headers": "X-Test"},
    )
    assert status == 204
    assert headers["access-control-allow-methods"] == "OPTIONS, POST"
    assert headers["access-control-allow-headers"] == "X-Test"
    assert headers["access-control-allow-origin"] == "http://app.example:3000"


def test_xhr_streaming_opens_with_its_prelude_then_streams_ddp_and_heartbeats(server: ServerProcess) -> None:
    base = new_session()
    stream = Stream(server, "POST", base + "/xhr_streaming")
    try:
        assert stream.response.status == 200
        assert stream.headers["content-type"] == "application/javascript; charset=UTF-8"
        assert stream.headers["cache-control"].startswith("no-store")
        assert stream.headers["transfer-encoding"] == "chunked"
        assert stream.line() == XHR_PRELUDE
        assert stream.line() == "o\n"
        send(server, base, CONNECT, json.dumps({"msg": "ping", "id": "p1"}))
        frames = [stream.line()[:-1]]
        while sum(len(ddp(f)) for f in frames) < 2:
            frames.append(stream.line()[:-1])
        messages = [m for f in frames for m in ddp(f)]
        assert [m["msg"] for m in messages] == ["connected", "pong"]
        assert stream.line() == "h\n"  # S-12, after 0.3 s of quiet
    finally:
        stream.close()


def test_a_streaming_response_ends_at_the_limit_and_the_next_carries_on_the_session(
    server: ServerProcess,
) -> None:
    """What one response could not carry waits for the next; nothing is lost or repeated."""
    base = new_session()
    first = Stream(server, "POST", base + "/xhr_streaming")
    assert first.line() == XHR_PRELUDE and first.line() == "o\n"
    send(server, base, CONNECT)
    assert ddp(first.line()[:-1])[0]["msg"] == "connected"
    ids = [f"{n}-" + "x" * 1000 for n in range(8)]  # 8 KB of pongs: two responses' worth
    carried: list[str] = []
    sent = 0
    size = len("o\n")  # what the response carried, as the server counts it (the prelude aside)
    while True:  # one pong per frame until the server ends the response (past 4096 bytes)
        send(server, base, json.dumps({"msg": "ping", "id": ids[sent]}))
        sent += 1
        try:
            carried.append(first.line()[:-1])
        except EOFError:
            break
        size += len(carried[-1]) + 1
        if size >= LIMIT:
            assert first.rest() == ""  # ended right after the frame that crossed the limit
            break
    first.close()
    assert pongs(carried) == ids[: len(carried)] and 0 < len(carried) < len(ids)
    for ping_id in ids[sent:]:  # written with no receiving request open: they wait
        send(server, base, json.dumps({"msg": "ping", "id": ping_id}))
    second = Stream(server, "POST", base + "/xhr_streaming")
    try:
        assert second.line() == XHR_PRELUDE
        more = []
        while len(pongs(carried + more)) < len(ids):
            more.append(second.line()[:-1])
        assert more[0] != "o"  # the same session, not a new one
        assert pongs(carried + more) == ids
    finally:
        second.close()


def test_a_second_streaming_request_on_a_session_gets_2010(server: ServerProcess) -> None:
    base = new_session()
    first = Stream(server, "POST", base + "/xhr_streaming")
    try:
        assert first.line() == XHR_PRELUDE and first.line() == "o\n"
        second = Stream(server, "POST", base + "/xhr_streaming")
        assert second.line() == XHR_PRELUDE
        assert second.rest() == 'c[2010,"Another connection still open"]\n'
        second.close()
        send(server, base, CONNECT)  # the first still receives
        assert ddp(first.line()[:-1])[0]["msg"] == "connected"
    finally:
        first.close()


# --- eventsource and htmlfile -------------------------------------------------------------


def test_eventsource_sends_each_frame_as_an_event(server: ServerProcess) -> None:
    base = new_session()
    stream = Stream(server, "GET", base + "/eventsource", {"Origin": "http://app.example:3000"})
    try:
        assert stream.response.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        # An EventSource of another origin is refused by the browser without these.
        assert stream.headers["access-control-allow-origin"] == "http://app.example:3000"
        assert stream.headers["access-control-allow-credentials"] == "true"
        assert stream.headers["cache-control"].startswith("no-store")
        assert stream.line() == "\r\n"
        assert stream.line(b"\r\n\r\n") == "data: o\r\n\r\n"
        send(server, base, CONNECT)
        event = stream.line(b"\r\n\r\n")
        assert event.startswith("data: a[") and event.endswith("\r\n\r\n")
        assert ddp(event[len("data: ") : -4])[0]["msg"] == "connected"
        assert stream.line(b"\r\n\r\n") == "data: h\r\n\r\n"
    finally:
        stream.close()


def test_htmlfile_sends_each_frame_as_a_script_calling_the_callback(server: ServerProcess) -> None:
    base = new_session()
    stream = Stream(server, "GET", base + "/htmlfile?c=window.cb_1")
    try:
        assert stream.response.status == 200
        assert stream.headers["content-type"] == "text/html; charset=UTF-8"
        prelude = stream.line(b"\r\n\r\n")
        assert len(prelude) > 1024 and "window.cb_1" in prelude and prelude.startswith("<!doctype html>")
        assert stream.line(b"\r\n") == '<script>\np("o");\n</script>\r\n'
        send(server, base, CONNECT)
        script = stream.line(b"\r\n")
        assert script.startswith('<script>\np("a[') and script.endswith('");\n</script>\r\n')
        frame = json.loads(script[len("<script>\np(") : -len(");\n</script>\r\n")])
        assert ddp(frame)[0]["msg"] == "connected"
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("query", "answer"),
    [("", '"callback" parameter required'), ("?c=%3Cscript%3E", 'invalid "callback" parameter')],
)
def test_an_htmlfile_callback_is_checked(server: ServerProcess, query: str, answer: str) -> None:
    status, _, body = request(server, "GET", new_session() + "/htmlfile" + query)
    assert (status, body) == (500, answer)


@pytest.mark.parametrize("transport", ["eventsource", "htmlfile?c=cb"])
def test_get_streaming_transports_refuse_a_post(server: ServerProcess, transport: str) -> None:
    assert request(server, "POST", new_session() + "/" + transport)[0] == 405


# --- interrupted receiving requests (S-14) ------------------------------------------------


def raw_request(server: ServerProcess, text: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(text.encode())
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


def poll(server: ServerProcess, base: str) -> str:
    status, _, body = request(server, "POST", base + "/xhr")
    assert status == 200
    return body[:-1]


def connected_session(server: ServerProcess) -> str:
    base = new_session()
    assert poll(server, base) == "o"
    send(server, base, CONNECT)
    assert ddp(poll(server, base))[0]["msg"] == "connected"
    return base


@pytest.mark.parametrize("transport", ["xhr", "xhr_streaming"])
def test_a_waiting_request_whose_client_leaves_ends_the_session_at_once_with_1002(
    server: ServerProcess, transport: str
) -> None:
    """The client gave up on a waiting request (S-14): noticed while it waits (its socket reads
    end-of-file), not at the next heartbeat, and the session's next request learns it is over."""
    base = connected_session(server)
    sock = raw_request(server, f"POST {base}/{transport} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    time.sleep(0.05)  # the request waits for something to send
    sock.close()
    time.sleep(0.05)
    # Well before the 0.3 s heartbeat: unnoticed, the old request would still hold the session (2010).
    assert poll(server, base) == 'c[1002,"Connection interrupted"]'
    send(server, base, json.dumps({"msg": "ping", "id": "too late"}))  # taken by nobody
    assert poll(server, base) == 'c[1002,"Connection interrupted"]'  # until the session times out
    time.sleep(1.2)
    assert poll(server, base) == "o"  # then the id is a new session


def test_a_stream_whose_writes_fail_ends_the_session_with_1002(server: ServerProcess) -> None:
    """A client gone without a trace the watch sees (it had sent more bytes, so its socket
    reads data, not end-of-file): the stream's next write fails, and that ends the session."""
    base = connected_session(server)
    sock = raw_request(server, f"POST {base}/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    time.sleep(0.05)  # the request was read; the next bytes stay unread in the server's socket
    sock.sendall(b"GET")
    time.sleep(0.05)
    sock.close()  # heartbeats follow every 0.3 s: the first write may pass, the next fails
    deadline = time.monotonic() + 3
    answer = poll(server, base)
    while answer == 'c[2010,"Another connection still open"]' and time.monotonic() < deadline:
        time.sleep(0.05)
        answer = poll(server, base)
    assert answer == 'c[1002,"Connection interrupted"]'


def test_a_client_that_leaves_between_requests_loses_nothing(server: ServerProcess) -> None:
    """No request open when a message is written: it waits for the next one (not an interruption)."""
    base = new_session()
    assert poll(server, base) == "o"
    send(server, base, CONNECT, json.dumps({"msg": "ping", "id": "kept"}))
    time.sleep(0.1)
    messages = ddp(poll(server, base))
    assert [m["msg"] for m in messages] == ["connected", "pong"]


# --- the per-address limit ----------------------------------------------------------------


def test_an_address_holds_at_most_the_limit_of_http_sessions(limited_server: ServerProcess) -> None:
    server = limited_server
    bases = [new_session() for _ in range(5)]
    for base in bases:
        assert poll(server, base) == "o"
    refused = new_session()
    assert poll(server, refused) == 'c[3000,"Too many sessions from this address"]'
    assert poll(server, refused) == 'c[3000,"Too many sessions from this address"]'  # not created
    send(server, bases[0], CONNECT)  # the five still work
    assert ddp(poll(server, bases[0]))[0]["msg"] == "connected"
    time.sleep(1.2)  # none is polled: all five expire (S-13)
    assert poll(server, refused) == "o"


# --- HTTP/1.0 -----------------------------------------------------------------------------


def test_on_http_1_0_a_stream_is_not_chunked_and_ends_by_closing(server: ServerProcess) -> None:
    base = new_session()
    assert poll(server, base) == "o"
    ids = [f"{n}-" + "x" * 1000 for n in range(6)]
    send(server, base, CONNECT, *(json.dumps({"msg": "ping", "id": i}) for i in ids))
    sock = raw_request(server, f"POST {base}/xhr_streaming HTTP/1.0\r\n\r\n")
    head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")  # ends past 4096 bytes
    assert head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    assert b"chunked" not in head.lower() and b"content-length" not in head.lower()
    assert body.startswith(XHR_PRELUDE.encode() + b"a[")
    assert pongs([line for line in body.decode()[len(XHR_PRELUDE) :].split("\n") if line]) == ids


def test_on_http_1_0_a_poll_has_a_content_length(server: ServerProcess) -> None:
    sock = raw_request(server, f"POST {new_session()}/xhr HTTP/1.0\r\n\r\n")
    head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
    assert b"content-length: 2\r\n" in head.lower() + b"\r\n"
    assert body == b"o\n"
