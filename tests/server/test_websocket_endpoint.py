"""The raw WebSocket endpoint of a real server: connecting, heartbeats and bad input.

Every test here talks to a real `dddp` process over loopback. Item ids are from
the DDP checklist (docs/ddp-protocol.md).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
import websocket

from tests.ddp_client import DDPClient
from tests.protocol.test_websocket import client_frame
from tests.server_process import ServerProcess


def test_connect_as_version_1_gets_a_session(server: ServerProcess) -> None:
    with DDPClient(server.ws_url) as ddp:
        reply = ddp.connect("1", ["1", "pre2", "pre1"])
        assert reply["msg"] == "connected"
        assert len(reply["session"]) == 17


@pytest.mark.parametrize("version", ["pre2", "pre1"])
def test_connect_as_older_versions_is_accepted(server: ServerProcess, version: str) -> None:
    with DDPClient(server.ws_url) as ddp:
        assert ddp.connect(version, [version])["msg"] == "connected"


def test_trailing_slash_endpoint_serves_ddp_too(server: ServerProcess) -> None:
    """S-4: Meteor serves both /websocket and /websocket/."""
    with DDPClient(server.ws_url + "/") as ddp:
        assert ddp.connect()["msg"] == "connected"


def test_version_mismatch_gets_failed_with_our_choice_and_a_close(server: ServerProcess) -> None:
    """D-12: version "pre2" while supporting "1" gives failed "1", then the socket closes."""
    with DDPClient(server.ws_url) as ddp:
        ddp.send({"msg": "connect", "version": "pre2", "support": ["1", "pre2"]})
        assert ddp.recv() == {"msg": "failed", "version": "1"}
        code, _reason = ddp.recv_close()
        assert code == 1000


def test_pipelined_messages_after_failed_are_ignored(server: ServerProcess) -> None:
    """D-14: a client may pipeline; after `failed` nothing else is answered."""
    with DDPClient(server.ws_url) as ddp:
        ddp.send({"msg": "connect", "version": "2", "support": ["2"]})
        ddp.send({"msg": "ping", "id": "late"})
        assert ddp.recv() == {"msg": "failed", "version": "1"}
        code, _ = ddp.recv_close()
        assert code == 1000


def test_ping_with_and_without_id(client: DDPClient) -> None:
    """D-20: pong copies the id if and only if the ping had one."""
    client.send({"msg": "ping", "id": "abc"})
    assert client.recv() == {"msg": "pong", "id": "abc"}
    client.send({"msg": "ping"})
    assert client.recv() == {"msg": "pong"}


def test_pong_gets_no_reply(client: DDPClient) -> None:
    """D-24."""
    client.send({"msg": "pong", "id": "x"})
    client.assert_silent()


def test_ping_is_answered_while_a_method_runs(client: DDPClient) -> None:
    """D-20: pings are answered outside the ordered queue; D-84: the method still finishes."""
    client.send({"msg": "method", "method": "sleep", "params": [0.5], "id": "slow"})
    client.send({"msg": "ping", "id": "p"})
    assert client.recv(timeout=0.4) == {"msg": "pong", "id": "p"}
    assert client.recv() == {"msg": "result", "id": "slow", "result": 0.5}
    assert client.recv() == {"msg": "updated", "methods": ["slow"]}


# --- table 1.4, over a real socket ---------------------------------------------------

ERROR_ROWS = [
    ("not JSON", "{not json", {"msg": "error", "reason": "Bad request"}),
    ("JSON but not an object", "[1, 2]", {"msg": "error", "reason": "Bad request"}),
    (
        "unknown EJSON type in params",
        '{"msg":"method","method":"echo","id":"1","params":[{"$type":"nope","$value":1}]}',
        {"msg": "error", "reason": "Parse error"},
    ),
    ("JSON string", '"hello"', {"msg": "error", "reason": "Bad request"}),
    ("NaN literal", '{"msg":"ping","id":NaN}', {"msg": "error", "reason": "Bad request"}),
    ("empty msg", '{"msg":""}', {"msg": "error", "reason": "Bad request", "offendingMessage": {"msg": ""}}),
    (
        "sub with numeric name",
        '{"msg":"sub","id":"s","name":7}',
        {
            "msg": "error",
            "reason": "Malformed subscription",
            "offendingMessage": {"msg": "sub", "id": "s", "name": 7},
        },
    ),
    (
        "method with numeric id",
        '{"msg":"method","id":1,"method":"echo"}',
        {
            "msg": "error",
            "reason": "Malformed method invocation",
            "offendingMessage": {"msg": "method", "id": 1, "method": "echo"},
        },
    ),
    (
        "method with params not an array",
        '{"msg":"method","id":"1","method":"echo","params":"x"}',
        {
            "msg": "error",
            "reason": "Malformed method invocation",
            "offendingMessage": {"msg": "method", "id": "1", "method": "echo", "params": "x"},
        },
    ),
    (
        "object without msg",
        '{"id":"1"}',
        {"msg": "error", "reason": "Bad request", "offendingMessage": {"id": "1"}},
    ),
    (
        "unknown msg",
        '{"msg":"hello"}',
        {"msg": "error", "reason": "Bad request", "offendingMessage": {"msg": "hello"}},
    ),
    (
        "second connect",
        '{"msg":"connect","version":"1","support":["1"]}',
        {
            "msg": "error",
            "reason": "Already connected",
            "offendingMessage": {"msg": "connect", "version": "1", "support": ["1"]},
        },
    ),
    (
        "sub with numeric id",
        '{"msg":"sub","id":1,"name":"AllNotes"}',
        {
            "msg": "error",
            "reason": "Malformed subscription",
            "offendingMessage": {"msg": "sub", "id": 1, "name": "AllNotes"},
        },
    ),
    (
        "sub with params not an array",
        '{"msg":"sub","id":"s","name":"AllNotes","params":{}}',
        {
            "msg": "error",
            "reason": "Malformed subscription",
            "offendingMessage": {"msg": "sub", "id": "s", "name": "AllNotes", "params": {}},
        },
    ),
    (
        "method without a name",
        '{"msg":"method","id":"1"}',
        {
            "msg": "error",
            "reason": "Malformed method invocation",
            "offendingMessage": {"msg": "method", "id": "1"},
        },
    ),
    (
        "method with a numeric randomSeed",
        '{"msg":"method","id":"1","method":"echo","randomSeed":5}',
        {
            "msg": "error",
            "reason": "Malformed method invocation",
            "offendingMessage": {"msg": "method", "id": "1", "method": "echo", "randomSeed": 5},
        },
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), ERROR_ROWS, ids=[row[0] for row in ERROR_ROWS])
def test_malformed_message_gets_error_and_the_session_goes_on(
    client: DDPClient, case: str, text: str, expected: dict
) -> None:
    client.send(text)
    assert client.recv() == expected
    client.send({"msg": "ping", "id": "still-there"})
    assert client.recv() == {"msg": "pong", "id": "still-there"}


@pytest.mark.parametrize("value", ["1e999", '"\\ud800"'], ids=["float-overflow", "lone-surrogate"])
def test_a_message_no_reply_could_carry_is_answered_and_logs_no_traceback(
    server: ServerProcess, client: DDPClient, value: str
) -> None:
    """Issue 9, attack 7: it used to get no reply at all (the client hung) and a traceback."""
    start = len(server.text)
    client.send(f'{{"msg":"method","id":"m","method":"echo","params":[{value}]}}')
    assert client.recv()["error"]["error"] == 400
    assert client.recv() == {"msg": "updated", "methods": ["m"]}
    client.send(f'{{"msg":"sub","id":"s","name":"NotesByText","params":[{value}]}}')
    assert client.recv()["msg"] == "nosub"
    client.send(f'{{"msg":"ping","id":{value}}}')
    assert client.recv() == {"msg": "error", "reason": "Bad request"}
    client.send({"msg": "ping", "id": "still-there"})
    assert client.recv() == {"msg": "pong", "id": "still-there"}
    assert "Traceback" not in server.text[start:]


def test_anything_before_connect_gets_must_connect_first(server: ServerProcess) -> None:
    """D-15: the socket stays open; connecting afterwards works."""
    with DDPClient(server.ws_url) as ddp:
        ddp.send({"msg": "ping"})
        assert ddp.recv() == {
            "msg": "error",
            "reason": "Must connect first",
            "offendingMessage": {"msg": "ping"},
        }
        assert ddp.connect()["msg"] == "connected"


@pytest.mark.parametrize("kind", ["ping", "pong"])
def test_pre1_ping_and_pong_are_bad_requests(server: ServerProcess, kind: str) -> None:
    """D-16: pre1 has no heartbeats."""
    with DDPClient(server.ws_url) as ddp:
        ddp.connect("pre1", ["pre1"])
        ddp.send({"msg": kind})
        assert ddp.recv() == {"msg": "error", "reason": "Bad request", "offendingMessage": {"msg": kind}}


# --- frames that are not DDP text ---------------------------------------------------


def test_binary_frame_gets_bad_request_and_the_session_goes_on(client: DDPClient) -> None:
    client.send_binary(b'{"msg":"ping"}')
    assert client.recv() == {"msg": "error", "reason": "Bad request"}
    client.send({"msg": "ping", "id": "after"})
    assert client.recv() == {"msg": "pong", "id": "after"}


def test_text_frame_that_is_not_utf8_closes_with_1007(server: ServerProcess, client: DDPClient) -> None:
    """RFC 6455 8.1: invalid UTF-8 in a text frame fails the connection."""
    with DDPClient(server.ws_url) as bystander:
        bystander.connect()
        client.ws.send(b'{"msg":"ping","id":"\xff"}', opcode=websocket.ABNF.OPCODE_TEXT)
        code, reason = client.recv_close()
        assert code == 1007
        assert "UTF-8" in reason
        bystander.send({"msg": "ping", "id": "b"})
        assert bystander.recv() == {"msg": "pong", "id": "b"}


@pytest.fixture(scope="module")
def small_limit_server(start_server) -> ServerProcess:  # type: ignore[no-untyped-def]
    return start_server(DDDP_MAX_MESSAGE_SIZE="1000").wait_until_listening()


def test_message_over_the_size_limit_closes_with_1009(small_limit_server: ServerProcess) -> None:
    with DDPClient(small_limit_server.ws_url) as bystander, DDPClient(small_limit_server.ws_url) as ddp:
        bystander.connect()
        ddp.connect()
        ddp.send({"msg": "method", "method": "echo", "id": "1", "params": ["x" * 1000]})
        code, reason = ddp.recv_close()
        assert code == 1009
        assert "1000 bytes" in reason and "DDDP_MAX_MESSAGE_SIZE" in reason
        bystander.send({"msg": "ping", "id": "b"})
        assert bystander.recv() == {"msg": "pong", "id": "b"}


def test_after_a_violation_the_connection_ends_at_once_whatever_the_client_goes_on_sending(
    small_limit_server: ServerProcess,
) -> None:
    """RFC 6455 7.1.7: nothing after the violation can be parsed, not even a close frame; the server
    read and dropped a flood of fragments for the close handshake's timeout (5 s)."""
    with DDPClient(small_limit_server.ws_url) as ddp:
        ddp.connect()
        started = time.monotonic()
        ddp.ws.send_frame(websocket.ABNF.create_frame("x" * 1001, websocket.ABNF.OPCODE_TEXT))
        ended = False
        try:
            for _ in range(20_000):  # the flood goes on, until the server shuts the socket
                ddp.ws.send_frame(websocket.ABNF.create_frame("", websocket.ABNF.OPCODE_CONT, fin=0))
                if time.monotonic() - started > 3:
                    break
        except (OSError, websocket.WebSocketException):
            ended = True
        assert ended and time.monotonic() - started < 2
        ddp.ws.settimeout(2)
        close = ddp.ws.recv_frame()  # (not recv_close: its answer would meet a shut socket)
        assert close.opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(close.data[:2], "big") == 1009


def test_message_at_the_size_limit_is_accepted(small_limit_server: ServerProcess) -> None:
    with DDPClient(small_limit_server.ws_url) as ddp:
        ddp.connect()
        message = {"msg": "method", "method": "echo", "id": "1", "params": [""]}
        padding = 1000 - len(json.dumps(message))
        message["params"] = ["x" * padding]
        assert len(json.dumps(message)) == 1000
        ddp.send(message)
        assert ddp.recv() == {"msg": "result", "id": "1", "result": ["x" * padding]}


def test_fragmented_message_over_the_limit_closes_with_1009(small_limit_server: ServerProcess) -> None:
    """The limit holds for a whole message, not just for each of its frames."""
    with DDPClient(small_limit_server.ws_url) as ddp:
        ddp.connect()
        text = json.dumps({"msg": "method", "method": "echo", "id": "1", "params": ["y" * 1500]})
        ddp.ws.send_frame(websocket.ABNF.create_frame(text[:700], websocket.ABNF.OPCODE_TEXT, fin=0))
        ddp.ws.send_frame(websocket.ABNF.create_frame(text[700:], websocket.ABNF.OPCODE_CONT, fin=1))
        code, _ = ddp.recv_close()
        assert code == 1009


def test_fragmented_message_within_the_limit_is_reassembled(client: DDPClient) -> None:
    text = json.dumps({"msg": "ping", "id": "in-two-parts"})
    client.ws.send_frame(websocket.ABNF.create_frame(text[:10], websocket.ABNF.OPCODE_TEXT, fin=0))
    client.ws.send_frame(websocket.ABNF.create_frame(text[10:], websocket.ABNF.OPCODE_CONT, fin=1))
    assert client.recv() == {"msg": "pong", "id": "in-two-parts"}


# --- HTTP on the same port -----------------------------------------------------------


def test_other_paths_are_served_by_django(server: ServerProcess) -> None:
    with urllib.request.urlopen(server.http_url + "/hello/", timeout=5) as response:
        assert response.status == 200
        assert response.read() == b"hello from Django\n"


def test_plain_get_on_the_websocket_endpoint_is_400(server: ServerProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(server.http_url + "/websocket", timeout=5)
    assert raised.value.code == 400
    assert raised.value.read() == b"Not a valid websocket request\n"


def test_websocket_upgrade_on_another_path_is_closed_with_a_reason(server: ServerProcess) -> None:
    ws = websocket.create_connection(server.http_url.replace("http", "ws") + "/hello/", timeout=5)
    try:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1008
        assert b"/hello/" in frame.data
    finally:
        ws.close()


def test_each_connection_logs_one_line_when_opened_and_one_when_closed(server: ServerProcess) -> None:
    start = len(server.log)
    with DDPClient(server.ws_url) as ddp:
        session = ddp.connect()["session"]
    opened = server.wait_for_log(r"connection (\d+) opened from 127\.0\.0\.1", start=start)
    number = opened.group(1)
    server.wait_for_log(rf"connection {number} closed after [\d.]+s \(session {session}\)", start=start)


UPGRADE = "GET /websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.parametrize(
    ("request_head", "status", "extra"),
    [
        (UPGRADE.replace("HTTP/1.1", "HTTP/1.0") + "Sec-WebSocket-Version: 13\r\n", 400, None),
        (UPGRADE + f"Sec-WebSocket-Key: {GOOD_KEY}\r\n", 426, "Sec-WebSocket-Version: 13, 8, 7"),
        (UPGRADE + f"Sec-WebSocket-Version: 99\r\nSec-WebSocket-Key: {GOOD_KEY}\r\n", 426, None),
        (UPGRADE + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc\r\n", 400, None),
        (UPGRADE + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: YWJj\r\n", 400, None),
        (UPGRADE + "Sec-WebSocket-Version: 13\r\n", 400, None),
    ],
    ids=["http-1.0", "no-version", "unknown-version", "key-not-base64", "key-not-16-bytes", "no-key"],
)
def test_a_refused_upgrade_gets_its_status_and_logs_one_line_without_a_traceback(
    server: ServerProcess, request_head: str, status: int, extra: str | None
) -> None:
    """Issue 9, attack 9: these were tracebacks, a 500 for the key "abc", "402" for HTTP/1.0."""
    start, first_line = len(server.text), len(server.log)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall((request_head + "\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
    finally:
        sock.close()
    head = answer.split(b"\r\n\r\n")[0].decode()
    assert head.startswith(f"HTTP/1.1 {status} "), head
    if extra:
        assert extra in head
    server.wait_for_log(rf'"GET /websocket HTTP/1\.[01]" {status} ', start=first_line)
    assert "Traceback" not in server.text[start:]


def test_params_over_the_setting_get_a_413(start_server) -> None:  # type: ignore[no-untyped-def]
    """Issue 9, attack 3: DDDP_MAX_PARAMS_SIZE bounds what a subscription pins."""
    server = start_server(DDDP_MAX_PARAMS_SIZE="1000").wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        ddp.send({"msg": "sub", "id": "s", "name": "NotesByText", "params": ["x" * 2000]})
        nosub = ddp.recv()
        assert (nosub["msg"], nosub["error"]["error"]) == ("nosub", 413)
        ddp.send({"msg": "method", "id": "m", "method": "echo", "params": ["x" * 2000]})
        assert ddp.recv()["error"]["error"] == 413
        assert ddp.recv() == {"msg": "updated", "methods": ["m"]}
        ddp.send({"msg": "method", "id": "n", "method": "echo", "params": ["x" * 900]})
        assert ddp.recv() == {"msg": "result", "id": "n", "result": ["x" * 900]}


@pytest.mark.parametrize("cookie_bytes", [0, 30_000], ids=["short-head", "head-over-8-KiB"])
def test_a_connect_sent_with_the_upgrade_is_answered(server: ServerProcess, cookie_bytes: int) -> None:
    """The bytes after the head, read with it before the handler starts, are the session's first."""
    connect = json.dumps({"msg": "connect", "version": "1", "support": ["1"]}).encode()
    head = UPGRADE + f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {GOOD_KEY}\r\n"
    if cookie_bytes:
        head += "Cookie: c=" + "x" * cookie_bytes + "\r\n"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall((head + "\r\n").encode() + client_frame(connect))
        answer = b""
        while b'"connected"' not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"closed after {answer!r}"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 101 ")
    finally:
        sock.close()
