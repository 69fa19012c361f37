"""SockJS under /sockjs over real sockets: the endpoints, xhr-polling and the SockJS websocket (section 3).

The server's SockJS heartbeat delay is 0.3 s and its disconnect delay 0.6 s,
so timeouts show within a test. Item ids are docs/ddp-protocol.md's.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from tests.server_process import ServerProcess
from tests.testapp.models import Note

CONNECT = json.dumps({"msg": "connect", "version": "1", "support": ["1"]})


@pytest.fixture(scope="module")
def sockjs_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(
        DDDP_SOCKJS_HEARTBEAT_DELAY="0.3",
        DDDP_SOCKJS_DISCONNECT_DELAY="0.6",
        DDDP_MAX_MESSAGE_SIZE="65536",
        DDDP_SOCKJS_URL="http://static.example/sockjs-0.3.4.min.js",
        DDDP_ALLOWED_ORIGINS="http://app.example:3000",  # a Meteor app served from elsewhere
    ).wait_until_listening()


def request(
    server: ServerProcess,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


class PollingClient:
    """A SockJS xhr-polling client, one request at a time, as sockjs-client's xhr-polling."""

    def __init__(self, server: ServerProcess):
        self.server = server
        self.base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"

    def poll(self) -> str:
        status, headers, body = request(self.server, "POST", self.base + "/xhr")
        assert status == 200 and headers["content-type"] == "application/javascript; charset=UTF-8"
        assert body.endswith("\n")
        return body[:-1]

    def send(self, *texts: str) -> int:
        return request(self.server, "POST", self.base + "/xhr_send", json.dumps(list(texts)))[0]

    def messages(self) -> list[dict[str, Any]]:
        """The DDP messages of the next poll that carries any (heartbeats skipped)."""
        for _ in range(50):
            frame = self.poll()
            if frame != "h":
                assert frame.startswith("a"), frame
                return [json.loads(text) for text in json.loads(frame[1:])]
        raise AssertionError("only heartbeats")


@pytest.fixture
def polling(sockjs_server: ServerProcess) -> Iterator[PollingClient]:
    client = PollingClient(sockjs_server)
    assert client.poll() == "o"
    assert client.send(CONNECT) == 204
    assert client.messages()[0]["msg"] == "connected"
    yield client


# --- the fixed endpoints ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sockjs", "/sockjs/"])
def test_the_greeting(sockjs_server: ServerProcess, path: str) -> None:
    status, headers, body = request(sockjs_server, "GET", path)
    assert (status, body) == (200, "Welcome to SockJS!\n")
    assert headers["content-type"] == "text/plain; charset=UTF-8"


def test_info_says_websocket_and_no_cookie_and_is_never_cached(sockjs_server: ServerProcess) -> None:
    """S-20, S-21."""
    status, headers, body = request(
        sockjs_server, "GET", "/sockjs/info?t=1", headers={"Origin": "http://app.example:3000"}
    )
    info = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json; charset=UTF-8"
    assert {k: v for k, v in info.items() if k != "entropy"} == {
        "websocket": True,
        "origins": ["*:*"],
        "cookie_needed": False,
    }
    assert isinstance(info["entropy"], int)
    assert headers["cache-control"] == "no-store, no-cache, no-transform, must-revalidate, max-age=0"
    assert headers["access-control-allow-origin"] == "http://app.example:3000"
    assert headers["access-control-allow-credentials"] == "true"
    assert "set-cookie" not in headers
    assert json.loads(request(sockjs_server, "GET", "/sockjs/info")[2])["entropy"] != info["entropy"]


def test_info_preflight(sockjs_server: ServerProcess) -> None:
    status, headers, body = request(
        sockjs_server, "OPTIONS", "/sockjs/info", headers={"Origin": "http://app.example:3000"}
    )
    assert (status, body) == (204, "")
    assert headers["access-control-allow-methods"] == "OPTIONS, GET"
    assert headers["access-control-allow-origin"] == "http://app.example:3000"


def test_the_iframe_page_is_cached_by_etag(sockjs_server: ServerProcess) -> None:
    status, headers, body = request(sockjs_server, "GET", "/sockjs/iframe.html")
    assert status == 200 and headers["content-type"] == "text/html; charset=UTF-8"
    assert "SockJS.bootstrap_iframe()" in body
    assert '<script src="http://static.example/sockjs-0.3.4.min.js"></script>' in body  # DDDP_SOCKJS_URL
    again = request(
        sockjs_server, "GET", "/sockjs/iframe-1.6.1.html", headers={"If-None-Match": headers["etag"]}
    )
    assert again[0] == 304 and again[2] == ""


@pytest.mark.parametrize("path", ["/sockjs/a", "/sockjs/a.html", "/sockjs//", "/sockjs/a./a/xhr"])
def test_other_paths_are_404(sockjs_server: ServerProcess, path: str) -> None:
    assert request(sockjs_server, "POST" if path.endswith("xhr") else "GET", path)[0] == 404


# --- xhr-polling ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_polling_session_speaks_ddp_several_messages_to_a_frame(polling: PollingClient) -> None:
    """S-10: a subscription's documents and its ready come in one `a[...]` frame."""
    text = f"sockjs-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        Note.objects.create(text=text)
    sub = json.dumps({"msg": "sub", "id": "s", "name": "NotesByText", "params": [text]})
    ping = json.dumps({"msg": "ping", "id": "p"})
    assert polling.send(sub, ping) == 204  # several client messages in one xhr_send
    received: list[dict[str, Any]] = []
    while not any(m.get("msg") == "ready" for m in received):
        received += polling.messages()
    assert [m["msg"] for m in received].count("added") == 3
    assert {"msg": "pong", "id": "p"} in received


@pytest.mark.django_db(transaction=True)
def test_a_change_reaches_a_polling_client(polling: PollingClient) -> None:
    text = f"live-{uuid.uuid4().hex[:8]}"
    polling.send(json.dumps({"msg": "sub", "id": "s", "name": "NotesByText", "params": [text]}))
    assert polling.messages() == [{"msg": "ready", "subs": ["s"]}]
    note = Note.objects.create(text=text)
    (added,) = polling.messages()
    assert (added["msg"], added["id"]) == ("added", str(note.pk))


def test_an_idle_poll_is_answered_with_a_heartbeat(polling: PollingClient) -> None:
    """S-12."""
    assert polling.poll() == "h"


def test_a_second_concurrent_poll_gets_2010(polling: PollingClient, sockjs_server: ServerProcess) -> None:
    """S-14."""
    first = http.client.HTTPConnection("127.0.0.1", sockjs_server.port, timeout=10)
    first.request("POST", polling.base + "/xhr")
    try:
        time.sleep(0.1)  # the first poll is waiting
        assert polling.poll() == 'c[2010,"Another connection still open"]'
    finally:
        assert first.getresponse().read() == b"h\n"
        first.close()


@pytest.mark.parametrize(
    ("body", "answer"),
    [(b"", "Payload expected."), (b'["a"', "Broken JSON encoding."), (b"[1]", "Broken JSON encoding.")],
    ids=["empty", "broken", "not strings"],
)
def test_a_bad_send_is_500_with_the_protocol_text(polling: PollingClient, body: bytes, answer: str) -> None:
    status, _, text = request(polling.server, "POST", polling.base + "/xhr_send", body)
    assert (status, text) == (500, answer)
    assert polling.send(json.dumps({"msg": "ping", "id": "still"})) == 204  # the session goes on
    assert polling.messages() == [{"msg": "pong", "id": "still"}]


def test_a_send_over_the_message_size_limit_is_refused_from_its_header(polling: PollingClient) -> None:
    big = json.dumps(["x" * 70000])
    status, _, text = request(polling.server, "POST", polling.base + "/xhr_send", big)
    assert (status, text) == (413, "Payload too large.")


def test_a_send_to_an_unknown_session_is_404(sockjs_server: ServerProcess) -> None:
    assert request(sockjs_server, "POST", "/sockjs/000/nosuch/xhr_send", '["x"]')[0] == 404


def test_an_unpolled_session_ends_and_its_next_poll_opens_a_new_one(
    polling: PollingClient, sockjs_server: ServerProcess
) -> None:
    """S-13: after the disconnect delay the session is gone; a poll then gets `o` (a new session)."""
    time.sleep(1.2)  # twice the disconnect delay
    assert polling.send(CONNECT) == 404
    assert polling.poll() == "o"


# --- the websockets ---------------------------------------------------------------------


def test_the_sockjs_websocket_frames_ddp_messages(sockjs_server: ServerProcess) -> None:
    """S-10, S-11: `o`, messages as `a[...]`, several client messages per frame."""
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{sockjs_server.port}/sockjs/123/abcdefgh/websocket", timeout=5
    )
    try:
        assert ws.recv() == "o"
        ws.send(json.dumps([CONNECT]))
        assert json.loads(json.loads(ws.recv()[1:])[0])["msg"] == "connected"
        ws.send(json.dumps([json.dumps({"msg": "ping", "id": "a"}), json.dumps({"msg": "ping", "id": "b"})]))
        pongs = [json.loads(text) for _ in range(2) for text in json.loads(ws.recv()[1:])]
        assert pongs == [{"msg": "pong", "id": "a"}, {"msg": "pong", "id": "b"}]
        ws.send("")  # an empty frame is ignored (S-11)
        ws.send(json.dumps({"msg": "ping", "id": "raw"}))  # neither a list nor a string: broken
        assert ws.recv() == 'c[3000,"Broken framing."]'
    finally:
        ws.close()


def test_the_raw_websocket_under_the_prefix_speaks_plain_ddp(sockjs_server: ServerProcess) -> None:
    """S-4."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{sockjs_server.port}/sockjs/websocket", timeout=5)
    try:
        ws.send(CONNECT)
        assert json.loads(ws.recv())["msg"] == "connected"
    finally:
        ws.close()


def test_a_websocket_url_without_an_upgrade_is_400_and_a_post_405(sockjs_server: ServerProcess) -> None:
    assert request(sockjs_server, "GET", "/sockjs/1/2/websocket")[0:3:2] == (
        400,
        "Not a valid websocket request",
    )
    assert request(sockjs_server, "POST", "/sockjs/1/2/websocket")[0] == 405


def test_a_chunked_send_is_read_and_one_over_the_limit_refused(polling: PollingClient) -> None:
    """Node's sockjs-client sends bodies chunked, with no Content-Length."""

    def chunked(body: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", polling.server.port, timeout=10)
        try:
            connection.request(
                "POST", polling.base + "/xhr_send", body=iter([body.encode()]), encode_chunked=True
            )
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    assert chunked(json.dumps([json.dumps({"msg": "ping", "id": "chunked"})])) == (204, "")
    assert polling.messages() == [{"msg": "pong", "id": "chunked"}]
    assert chunked(json.dumps(["x" * 70000])) == (413, "Payload too large.")


# --- jsonp-polling ----------------------------------------------------------------------


def jsonp_frame(body: str, callback: str = "cb") -> str:
    """The frame inside a jsonp body `/**/cb("frame");\\r\\n`."""
    prefix, suffix = f"/**/{callback}(", ");\r\n"
    assert body.startswith(prefix) and body.endswith(suffix), body
    return json.loads(body[len(prefix) : -len(suffix)])


def test_a_jsonp_session_speaks_ddp_through_its_callback(sockjs_server: ServerProcess) -> None:
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    status, headers, body = request(sockjs_server, "GET", base + "/jsonp?c=cb")
    assert status == 200 and headers["content-type"] == "application/javascript; charset=UTF-8"
    assert jsonp_frame(body) == "o"
    form = "d=" + urllib.parse.quote(json.dumps([CONNECT]))
    sent = request(
        sockjs_server,
        "POST",
        base + "/jsonp_send",
        form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert sent[0::2] == (200, "ok")
    raw = request(sockjs_server, "POST", base + "/jsonp_send", json.dumps([json.dumps({"msg": "ping"})]))
    assert raw[0::2] == (200, "ok")  # a raw body too
    received: list[str] = []
    for _ in range(20):  # bounded: heartbeats come every 0.3 s
        frame = jsonp_frame(request(sockjs_server, "GET", base + "/jsonp?c=cb")[2])
        if frame.startswith("a"):
            received += [json.loads(text)["msg"] for text in json.loads(frame[1:])]
        if "pong" in received:
            break
    assert received == ["connected", "pong"]


@pytest.mark.parametrize(
    ("query", "answer"),
    [("", '"callback" parameter required'), ("?c=alert(1)", 'invalid "callback" parameter')],
    ids=["missing", "invalid"],
)
def test_a_jsonp_callback_is_checked(sockjs_server: ServerProcess, query: str, answer: str) -> None:
    status, _, body = request(sockjs_server, "GET", f"/sockjs/000/{uuid.uuid4().hex[:8]}/jsonp{query}")
    assert (status, body) == (500, answer)


def test_the_prefix_is_a_setting(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(DDDP_SOCKJS_PREFIX="/ddp/sockjs").wait_until_listening()
    try:
        assert request(server, "GET", "/ddp/sockjs")[0::2] == (200, "Welcome to SockJS!\n")
        assert request(server, "GET", "/ddp/sockjs/info")[0] == 200
        assert request(server, "GET", "/sockjs")[0] == 404  # Django's now
    finally:
        assert server.stop() == 0
