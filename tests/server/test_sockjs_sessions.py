"""A SockJS session is a DDP session like a raw WebSocket one: the same limits and the same stop.

Over real sockets, against servers of their own. Item ids are docs/ddp-protocol.md's.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable

import websocket

from dddp.server.app import STOP_OVERRUN
from tests.server.test_sockjs import CONNECT, request
from tests.server.test_sockjs_streaming import XHR_PRELUDE, Stream, ddp, new_session, poll, send
from tests.server_process import ServerProcess


def test_a_polling_client_too_slow_to_take_its_messages_is_dropped(
    start_server: Callable[..., ServerProcess],
) -> None:
    """DDDP_MAX_SEND_QUEUE_BYTES counts what waits for a poll, as it counts a slow socket's."""
    server = start_server(DDDP_MAX_SEND_QUEUE_BYTES="20000").wait_until_listening()
    base = new_session()
    assert poll(server, base) == "o"
    send(server, base, CONNECT)
    assert ddp(poll(server, base))[0]["msg"] == "connected"
    # 30 KB of pongs written while the client does not poll: past the limit.
    send(server, base, *(json.dumps({"msg": "ping", "id": f"{n}-" + "x" * 1000}) for n in range(30)))
    server.wait_for_log(r"connection \d+ dropped: too slow: over 20000 bytes waiting", timeout=10)
    assert poll(server, base) == 'c[3000,"Go away!"]'  # nothing of what waited
    fresh = new_session()  # the server serves others as before
    assert poll(server, fresh) == "o"


def test_a_sockjs_websocket_message_over_the_size_limit_closes_the_session(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(DDDP_MAX_MESSAGE_SIZE="1000").wait_until_listening()
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}{new_session()}/websocket", timeout=5)
    try:
        assert ws.recv() == "o"
        ws.send(json.dumps([CONNECT]))
        assert json.loads(json.loads(ws.recv()[1:])[0])["msg"] == "connected"
        ws.send(json.dumps([json.dumps({"msg": "ping", "id": "x" * 2000})]))
        answer = ws.recv()
        assert answer.startswith("c[1009,"), answer  # the close frame, then the close
        opcode, _ = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
    finally:
        ws.close()


def test_sigterm_closes_polling_and_streaming_sessions_with_1001_and_they_do_not_hold_the_stop(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A waiting poll and an open stream are answered at once, like a WebSocket's close frame."""
    server = start_server().wait_until_listening()
    polled, streamed = new_session(), new_session()
    assert poll(server, polled) == "o"
    send(server, polled, CONNECT)
    assert ddp(poll(server, polled))[0]["msg"] == "connected"
    stream = Stream(server, "POST", streamed + "/xhr_streaming")
    assert stream.line() == XHR_PRELUDE and stream.line() == "o\n"
    answers: list[tuple[int, str]] = []
    waiting = threading.Thread(target=lambda: answers.append(request(server, "POST", polled + "/xhr")[::2]))
    waiting.start()
    time.sleep(0.2)  # the poll waits for something to send
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert stream.line() == 'c[1001,"server shutting down"]\n'
    stream.close()
    waiting.join(5)
    assert answers == [(200, 'c[1001,"server shutting down"]\n')]
    server.process.wait(10)
    assert time.monotonic() - started < 0.5 + STOP_OVERRUN + 1.0  # the close grace, not a poll's 25 s
    assert server.stop() == 0
    assert "Traceback" not in server.text


def connect_sub_and_call() -> list[str]:
    """What a Meteor client sends on open, before `connected` arrives: connect, sub, method."""
    return [
        CONNECT,
        json.dumps({"msg": "sub", "id": "s", "name": "NotesByText", "params": ["nothing-matches"]}),
        json.dumps({"msg": "method", "id": "m", "method": "echo", "params": [{"a": 1}]}),
    ]


def assert_connected_then_answered(messages: list[dict[str, object]]) -> None:
    assert messages[0]["msg"] == "connected"
    assert {"msg": "ready", "subs": ["s"]} in messages
    assert {"msg": "result", "id": "m", "result": [{"a": 1}]} in messages  # echo returns its args
    assert {"msg": "updated", "methods": ["m"]} in messages


def test_connect_sub_and_method_in_one_xhr_send(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server().wait_until_listening()
    base = new_session()
    assert poll(server, base) == "o"
    send(server, base, *connect_sub_and_call())
    messages: list[dict[str, object]] = []
    while len(messages) < 4:
        frame = poll(server, base)
        messages += ddp(frame) if frame != "h" else []
    assert_connected_then_answered(messages)


def test_connect_sub_and_method_in_one_sockjs_websocket_frame(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server().wait_until_listening()
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}{new_session()}/websocket", timeout=5)
    try:
        assert ws.recv() == "o"
        ws.send(json.dumps(connect_sub_and_call()))
        messages: list[dict[str, object]] = []
        while len(messages) < 4:
            messages += ddp(ws.recv())
        assert_connected_then_answered(messages)
    finally:
        ws.close()


def test_a_sessions_requests_are_not_access_logged_at_info(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Polls and sends are DDP traffic: one log line per poll would cost more than the poll."""
    server = start_server().wait_until_listening()
    base = new_session()
    assert poll(server, base) == "o"
    send(server, base, CONNECT)
    assert ddp(poll(server, base))[0]["msg"] == "connected"
    assert request(server, "GET", "/sockjs/info?marker")[0] == 200  # logged: the marker
    server.wait_for_log(r"GET /sockjs/info\?marker")
    server.wait_for_log(r"connection \d+ opened from .* \(sockjs/xhr-polling\)")
    assert base not in server.text
