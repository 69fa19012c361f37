"""Issue 9, attack 5: slowloris heads, sockets that never speak DDP, and the open-files limit.

A real server over loopback, with DDDP_REQUEST_HEAD_TIMEOUT and
DDDP_CONNECT_TIMEOUT of 0.5 s, a SockJS heartbeat delay (1.5 s) longer than
both, so that a long poll outlasting them shows, and a disconnect delay of 2 s.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

CONNECT = json.dumps({"msg": "connect", "version": "1", "support": ["1"]})
LATE_HEAD = r"no whole request head within 0\.5s \(DDDP_REQUEST_HEAD_TIMEOUT\)"
GREETING = b"GET /sockjs HTTP/1.1\r\nHost: x\r\n\r\n"  # answered with a Content-Length, kept alive


@pytest.fixture(scope="module")
def timeouts_server(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(
        DDDP_REQUEST_HEAD_TIMEOUT="0.5",
        DDDP_REQUEST_BODY_TIMEOUT="0.5",
        DDDP_CONNECT_TIMEOUT="0.5",
        DDDP_SOCKJS_HEARTBEAT_DELAY="1.5",
        DDDP_SOCKJS_DISCONNECT_DELAY="2",
    ).wait_until_listening()


@pytest.fixture
def raw(timeouts_server: ServerProcess) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", timeouts_server.port), timeout=5)
    yield sock
    sock.close()


def seconds_until_closed(sock: socket.socket, limit: float = 5.0) -> float:
    """How long until the server closes `sock` (what it sends meanwhile is dropped)."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length (or none, for a 204): its head and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a whole response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = lengths[0] if lengths else 0
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def trickle(sock: socket.socket, data: bytes, seconds: float, pieces: int = 6) -> None:
    """Send `data` in `pieces` spread over `seconds`, as a slow client would."""
    size = -(-len(data) // pieces)
    for start in range(0, len(data), size):
        sock.sendall(data[start : start + size])
        time.sleep(seconds / pieces)


# --- the request head --------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"GET /hello/ HTTP/1.1\r\nHost: x\r\n",
        b"POST /sockjs/000/abcdefgh/xhr HTTP/1.1\r\nHost: x\r\n",  # what the poll fast path takes
        b"GET /hel",
    ],
    ids=["headers-unfinished", "poll-headers-unfinished", "request-line-unfinished"],
)
def test_a_partial_request_head_is_closed_after_the_timeout(raw: socket.socket, head: bytes) -> None:
    raw.sendall(head)
    assert 0.4 < seconds_until_closed(raw) < 2.0


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(raw: socket.socket) -> None:
    assert 0.4 < seconds_until_closed(raw) < 2.0


def test_a_slow_head_that_arrives_in_time_is_served(raw: socket.socket) -> None:
    trickle(raw, b"GET /sockjs HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n\r\n", 0.3)
    assert read_response(raw).endswith(b"\r\n\r\nWelcome to SockJS!\n")


def test_a_kept_alive_connection_times_each_head_from_its_first_byte(raw: socket.socket) -> None:
    """The wait for the next request is longer than the head timeout; each head gets the timeout."""
    raw.sendall(GREETING)
    assert read_response(raw).startswith(b"HTTP/1.1 200 ")
    time.sleep(0.8)  # idle, longer than the head timeout
    trickle(raw, GREETING, 0.3)
    assert read_response(raw).startswith(b"HTTP/1.1 200 ")
    raw.sendall(GREETING[:10])
    assert 0.4 < seconds_until_closed(raw) < 2.0


def test_many_partial_heads_are_all_closed_with_one_log_line(
    start_module_server: Callable[..., ServerProcess],
) -> None:
    """A slowloris attack: every socket is closed, and the log says so once (not once each)."""
    server = start_module_server(DDDP_REQUEST_HEAD_TIMEOUT="0.5").wait_until_listening()
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(50)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: b\r\n")
        for sock in socks:
            seconds_until_closed(sock, limit=3.0)
    finally:
        for sock in socks:
            sock.close()
    server.wait_for_log(LATE_HEAD)
    assert sum("no whole request head" in line for line in server.log) == 1
    assert "Traceback" not in server.text


def test_a_long_poll_and_a_websocket_outlast_the_head_timeout(timeouts_server: ServerProcess) -> None:
    """The head timeout covers reading heads only: not a response being written, nor an upgraded socket."""
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    with DDPClient(timeouts_server.ws_url) as ddp:
        ddp.connect()
        assert poll(timeouts_server, base) == "o"
        assert send(timeouts_server, base, CONNECT) == 204
        assert json.loads(json.loads(poll(timeouts_server, base)[1:])[0])["msg"] == "connected"
        started = time.monotonic()
        assert poll(timeouts_server, base) == "h"  # after the heartbeat delay, 1.5 s
        assert time.monotonic() - started > 1.2
        ddp.send({"msg": "ping", "id": "after"})
        assert ddp.recv() == {"msg": "pong", "id": "after"}


# --- the request body --------------------------------------------------------------------


def test_a_body_that_stops_coming_is_closed_after_the_timeout(raw: socket.socket) -> None:
    """A slow POST: its head whole and in time, its body never ending."""
    raw.sendall(b"POST /no-such-page/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    assert seconds_until_closed(raw) < 2.5


def test_a_sockjs_send_whose_body_stops_coming_gets_408_and_no_traceback(
    timeouts_server: ServerProcess, raw: socket.socket
) -> None:
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert poll(timeouts_server, base) == "o"
    first = len(timeouts_server.log)
    raw.sendall(f"POST {base}/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[".encode())
    started = time.monotonic()
    assert read_response(raw).split(b" ")[1] == b"408"
    assert 0.4 < time.monotonic() - started < 2.5
    assert not any("Traceback" in line for line in timeouts_server.log[first:])


def test_a_slow_body_that_keeps_coming_is_read_whole(
    timeouts_server: ServerProcess, raw: socket.socket
) -> None:
    """The timeout is for a body that stops, not a slow one: each piece within it is enough."""
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert poll(timeouts_server, base) == "o"
    assert send(timeouts_server, base, CONNECT) == 204
    assert json.loads(json.loads(poll(timeouts_server, base)[1:])[0])["msg"] == "connected"
    body = json.dumps([json.dumps({"msg": "ping", "id": "slow"})]).encode()
    raw.sendall(f"POST {base}/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    trickle(raw, body, seconds=1.5)  # 1.5 s in all, a piece every 0.25 s
    assert read_response(raw).split(b" ")[1] == b"204"
    assert json.loads(json.loads(poll(timeouts_server, base)[1:])[0]) == {"msg": "pong", "id": "slow"}


# --- the DDP connect ---------------------------------------------------------------------


def test_a_websocket_that_never_sends_connect_is_closed(timeouts_server: ServerProcess) -> None:
    first = len(timeouts_server.log)
    with DDPClient(timeouts_server.ws_url) as ddp:
        started = time.monotonic()
        code, reason = ddp.recv_close(timeout=3)
        assert time.monotonic() - started > 0.4
    assert (code, reason) == (1008, "no connect message within 0.5s (DDDP_CONNECT_TIMEOUT)")
    closed = timeouts_server.wait_for_log(
        r"INFO dddp\.server: connection (\d+) closed after [\d.]+s \(session None\): "
        r"no connect message within 0\.5s",
        start=first,
    )
    number = closed.group(1)
    lines = [line for line in timeouts_server.log[first:] if f"connection {number} " in line]
    assert len(lines) == 2, lines  # its opening and its close, nothing else


def test_a_websocket_that_connects_in_time_stays_open(timeouts_server: ServerProcess) -> None:
    with DDPClient(timeouts_server.ws_url) as ddp:
        time.sleep(0.2)
        assert ddp.connect()["msg"] == "connected"
        time.sleep(1.2)  # past the connect timeout, and several ticks of the server's checks
        ddp.send({"msg": "ping", "id": "still-there"})
        assert ddp.recv() == {"msg": "pong", "id": "still-there"}


def test_an_xhr_polling_session_that_never_sends_connect_is_closed(timeouts_server: ServerProcess) -> None:
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert poll(timeouts_server, base) == "o"
    started = time.monotonic()
    assert poll(timeouts_server, base) == 'c[1008,"no connect message within 0.5s (DDDP_CONNECT_TIMEOUT)"]'
    assert time.monotonic() - started < 1.4  # woken by the close, not by the heartbeat delay


def test_an_xhr_polling_session_that_connects_in_time_stays_open(timeouts_server: ServerProcess) -> None:
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert poll(timeouts_server, base) == "o"
    assert send(timeouts_server, base, CONNECT) == 204
    assert poll(timeouts_server, base).startswith('a["{\\"msg\\":\\"connected\\"')
    time.sleep(1.2)  # past the connect timeout, within the disconnect delay
    assert send(timeouts_server, base, json.dumps({"msg": "ping", "id": "p"})) == 204
    assert poll(timeouts_server, base) == 'a["{\\"msg\\":\\"pong\\",\\"id\\":\\"p\\"}"]'


def test_an_xhr_polling_session_never_polled_ends_after_the_disconnect_delay(
    timeouts_server: ServerProcess,
) -> None:
    """Its `connect` sent, so that only the disconnect delay (2 s) can end it."""
    first = len(timeouts_server.log)
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert poll(timeouts_server, base) == "o"
    assert send(timeouts_server, base, CONNECT) == 204
    closed = r"connection \d+ closed after 2\.\d+s \(session \w+\): no poll for 2s"
    timeouts_server.wait_for_log(closed, timeout=4, start=first)


def poll(server: ServerProcess, base: str) -> str:
    return request(server, f"POST {base}/xhr").decode()[:-1]  # without its "\n"


def send(server: ServerProcess, base: str, *texts: str) -> int:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        body = json.dumps(list(texts)).encode()
        sock.sendall(
            f"POST {base}/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        return int(read_response(sock).split(b" ")[1])


def request(server: ServerProcess, line: str) -> bytes:
    """The body of the answer to a request without a body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"{line} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        return read_response(sock).partition(b"\r\n\r\n")[2]


# --- the open-files limit ----------------------------------------------------------------


def test_at_the_open_files_limit_accepting_backs_off_with_one_log_line(
    start_module_server: Callable[..., ServerProcess],
) -> None:
    """Existing clients keep working; new ones are accepted as soon as descriptors are free."""
    server = start_module_server(DDDP_REQUEST_HEAD_TIMEOUT="30").wait_until_listening()  # the flood stays
    pid = server.process.pid
    extra: list[socket.socket] = []
    with DDPClient(server.ws_url) as existing:
        existing.connect()
        first = len(server.log)
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 10, hard))
        try:
            extra = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(40)]
            failure = r"ERROR dddp\.server: cannot accept connections: Too many open files"
            server.wait_for_log(failure, timeout=5, start=first)
            time.sleep(1.5)  # several retries, each failing again
            existing.send({"msg": "ping", "id": "during"})
            assert existing.recv() == {"msg": "pong", "id": "during"}
            failures = [line for line in server.log[first:] if "open files" in line]
            assert len(failures) == 1, failures
            assert "Traceback" not in "\n".join(server.log[first:])
        finally:
            for sock in extra:
                sock.close()
        with DDPClient(server.ws_url) as newcomer:
            assert newcomer.connect()["msg"] == "connected"
        existing.send({"msg": "ping", "id": "after"})
        assert existing.recv() == {"msg": "pong", "id": "after"}
