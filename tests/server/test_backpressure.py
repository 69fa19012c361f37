"""Pipelined requests (issue 9, attack 1): the server reads no more from a connection
while it has DDDP_MAX_PENDING_REQUESTS unanswered, so the client's sends wait in its
own socket or HTTP request, not in the server's memory, and other clients go on.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import websocket

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

CONNECT = json.dumps({"msg": "connect", "version": "1", "support": ["1"]})


@pytest.fixture(scope="module")
def limited_server(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(DDDP_MAX_PENDING_REQUESTS="4").wait_until_listening()


def slow_call(number: int) -> str:
    """A method call of 1 KB that takes 50 ms: the server needs a while for each."""
    return json.dumps(
        {"msg": "method", "method": "sleep", "params": [0.05], "id": f"{number:06d}" + "-" * 1000}
    )


def test_a_pipelining_client_is_read_only_as_fast_as_its_requests_are_answered(
    limited_server: ServerProcess,
) -> None:
    attacker = DDPClient(limited_server.ws_url)
    try:
        attacker.connect()
        frame = b"".join(
            websocket.ABNF.create_frame(slow_call(number), websocket.ABNF.OPCODE_TEXT).format()
            for number in range(1000)
        )  # about 1 MB of calls; their answers take 50 s
        sock = attacker.ws.sock
        sock.settimeout(0.5)
        offered = frame * 40  # 40 MB: what a server reading everything takes in well under a second
        taken = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                taken += sock.send(offered[taken : taken + 1 << 20])
            except TimeoutError:
                pass
        # What the server took is its bounded backlog plus what the kernel's socket
        # buffers hold: a few MB on loopback, never the 40 MB.
        assert taken < 12 << 20, f"the server read {taken} bytes"
        # Meanwhile other clients are answered at once.
        with DDPClient(limited_server.ws_url) as other:
            other.connect()
            started = time.monotonic()
            assert other.call("add", 2, 3)["result"]["result"] == 5
            assert time.monotonic() - started < 1
        # The attacker's own calls are answered, in order.
        ids = []
        while len(ids) < 3:
            message = attacker.recv(timeout=5)
            if message["msg"] == "result":
                ids.append(message["id"][:6])
        assert ids == ["000000", "000001", "000002"]
    finally:
        attacker.ws.sock.close()


def test_a_paused_connection_answers_everything_once_resumed(limited_server: ServerProcess) -> None:
    """Pausing loses nothing: 30 pipelined calls past a limit of 4 all get their results, in order."""
    with DDPClient(limited_server.ws_url) as client:
        client.connect()
        for number in range(30):
            client.send({"msg": "method", "method": "add", "params": [number, 1], "id": str(number)})
        results = []
        while len(results) < 30:
            message = client.recv(timeout=5)
            if message["msg"] == "result":
                results.append((message["id"], message["result"]))
        assert results == [(str(number), number + 1) for number in range(30)]
        client.send({"msg": "ping", "id": "still here"})
        while (message := client.recv())["msg"] != "pong":
            assert message["msg"] == "updated"
        assert message == {"msg": "pong", "id": "still here"}


def sockjs_post(server: ServerProcess, path: str, body: str = "") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_a_sockjs_send_is_answered_only_when_the_session_reads_again(limited_server: ServerProcess) -> None:
    """xhr_send's 204 waits while the session is paused; a second send meanwhile gets 429."""
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert sockjs_post(limited_server, base + "/xhr") == (200, "o\n")
    calls = [
        json.dumps({"msg": "method", "method": "sleep", "params": [0.2], "id": str(n)}) for n in range(8)
    ]
    answered: list[float] = []
    started = time.monotonic()

    def send() -> None:
        assert sockjs_post(limited_server, base + "/xhr_send", json.dumps([CONNECT, *calls]))[0] == 204
        answered.append(time.monotonic() - started)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.3)  # the eight calls are in: the session is paused, the send waits
    assert not answered
    assert sockjs_post(limited_server, base + "/xhr_send", json.dumps(["{}"]))[0] == 429
    sender.join(timeout=10)
    # Resumed once half the limit was left: after 6 of the 8 calls (1.2 s), not at once.
    assert answered and 1.0 < answered[0] < 1.8, answered
    frames = ""
    while frames.count('\\"result\\"') < 8:
        frames += sockjs_post(limited_server, base + "/xhr")[1]


def test_a_closed_connection_with_a_backlog_is_released_once_its_backlog_is_done(
    limited_server: ServerProcess,
) -> None:
    """A client gone while its session is paused is released: at the latest when its backlog
    (bounded) is done and the session reads again, or at once when a reply finds the socket shut."""
    start = len(limited_server.log)
    attacker = DDPClient(limited_server.ws_url)
    attacker.connect()
    for number in range(6):
        attacker.send(slow_call(number))
    attacker.ws.sock.close()
    limited_server.wait_for_log(r"connection \d+ closed after", timeout=5, start=start)
