"""The sockjs-protocol test suite (table 3.5), ported to pytest, against `dddp --sockjs-test-services`.

First, the services themselves (dddp/server/sockjs_services.py): announced at
start, absent without the option, forgotten when they end, closed at shutdown.
Then the suite: sockjs-protocol's `sockjs-protocol.py` (the current one, whose
websocket class is `Websocket`; Python 2, unittest), class by class in its
order, each test naming the suite's test it ports. Where the suite's client
reads one HTTP chunk, this one reads up to the frame's terminator (but for
Http11, which is about chunks). The server is a real `dddp` process with the
four services (/echo, /close, /disabled_websocket_echo, /cookie_needed_echo)
and sockjs-node's default disconnect delay (5 s), which the suite assumes.

Left out, and why:
- `Websocket.test_haproxy`: a hixie-76 handshake (the `Sec-WebSocket-Key1/2`
  nonce of 2010 drafts, answered through HAProxy). No browser has sent it since
  2012; gevent-websocket, which does dddp's upgrade, speaks RFC 6455 only, and
  so do Meteor's clients (S-3, S-5).
- The suite's module-level caution to run it at most once in five seconds:
  here every test uses fresh session ids, so nothing waits for a timeout.

JSONEncoding's decoding check sends every BMP code point escaped (the suite
sends the subset sockjs-client escapes); the escaping check uses S-16's ranges,
which are the suite's `escapable_by_server` above U+00FF.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import websocket

from dddp.server.sockjs_services import SockJSTestServices
from tests.server_process import ServerProcess

NOT_CACHED = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
ECHO, CLOSE, WSOFF, COOKIE = "/echo", "/close", "/disabled_websocket_echo", "/cookie_needed_echo"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TIMEOUT = 5.0
LONG_MAX_AGE = re.compile(r"max-age=[1-9][0-9]{6}")


@pytest.fixture(scope="module")
def services(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(
        "--settings",
        "tests.settings",
        "--sockjs-test-services",
        "127.0.0.1:0",
        DDDP_SOCKJS_DISCONNECT_DELAY="5",
        DDDP_SOCKJS_URL="http://static.example/sockjs.min.js",
    ).wait_until_listening()


def session_url(base: str) -> str:
    return f"{base}/000/{uuid.uuid4()}"


# --- a minimal HTTP client ----------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # names lowercased
    body: str

    def __getitem__(self, name: str) -> str | None:
        """A header's value, None when absent (the suite's `r['name']`)."""
        return self.headers.get(name.lower())


def request(
    server: ServerProcess,
    method: str,
    path: str,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Response(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read().decode("utf-8"),
        )
    finally:
        connection.close()


def GET(server: ServerProcess, path: str, headers: dict[str, str] | None = None) -> Response:
    return request(server, "GET", path, headers=headers)


def POST(
    server: ServerProcess, path: str, body: str | bytes | None = None, headers: dict[str, str] | None = None
) -> Response:
    return request(server, "POST", path, body, headers)


def OPTIONS(server: ServerProcess, path: str, headers: dict[str, str]) -> Response:
    return request(server, "OPTIONS", path, headers=headers)


class Stream:
    """A streaming response, read as it arrives; every read gives up after TIMEOUT seconds."""

    def __init__(self, server: ServerProcess, method: str, path: str, headers: dict[str, str] | None = None):
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        self.connection.request(method, path, headers=headers or {})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = {name.lower(): value for name, value in self.response.getheaders()}

    def __getitem__(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def read_until(self, terminator: str) -> str:
        """What arrives up to and including `terminator`; "" if the response ends first."""
        data = b""
        while not data.endswith(terminator.encode()):
            line = self.response.readline()
            if not line:
                assert not data, f"the response ended within a frame: {data[:200]!r}"
                return ""
            data += line
        return data.decode("utf-8")

    def ended(self) -> bool:
        """Whether the response is over (nothing more arrives, the server ended it)."""
        return self.response.readline() == b""

    def close(self) -> None:
        self.connection.close()


class RawHTTP:
    """HTTP over a bare socket, for what http.client hides: the version, chunks, the close."""

    def __init__(self, server: ServerProcess):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        self.file = self.sock.makefile("rb")

    def request(
        self, method: str, path: str, http: str = "1.1", headers: dict[str, str] | None = None
    ) -> tuple[str, int, dict[str, str]]:
        """Send a request; (HTTP version, status, headers with lowercased names) of its response."""
        lines = [f"{method} {path} HTTP/{http}", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if method == "POST":
            lines.append("Content-Length: 0")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status_line = self.file.readline().decode("latin-1")
        version, status = status_line.split(" ")[0].removeprefix("HTTP/"), int(status_line.split(" ")[1])
        response_headers: dict[str, str] = {}
        while (line := self.file.readline().decode("latin-1").rstrip("\r\n")) != "":
            name, _, value = line.partition(":")
            response_headers[name.strip().lower()] = value.strip()
        return version, status, response_headers

    def read(self, size: int) -> str:
        return self.file.read(size).decode("utf-8")

    def read_chunk(self) -> str:
        """One chunk of a chunked body ("" for the last one)."""
        size = int(self.file.readline().split(b";")[0], 16)
        data = self.file.read(size)
        assert self.file.read(2) == b"\r\n"
        return data.decode("utf-8")

    def closed(self) -> bool:
        """Whether the server closed the connection (after what was read)."""
        try:
            return self.file.read(1) == b""
        except (TimeoutError, ConnectionResetError):
            return False

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def ws_connect(server: ServerProcess, path: str) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://127.0.0.1:{server.port}{path}", timeout=TIMEOUT)


def ws_close_of(ws: websocket.WebSocket) -> tuple[int, str] | None:
    """The close frame the server sends next as (code, reason); None if the socket just ends.

    Fails if a data frame comes first.
    """
    try:
        opcode, data = ws.recv_data(control_frame=True)
    except websocket.WebSocketConnectionClosedException:
        return None
    assert opcode == websocket.ABNF.OPCODE_CLOSE, (opcode, data)
    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
    return code, data[2:].decode("utf-8")


# --- the suite's shared checks (its `Test` class) ------------------------------------------


def verify404(r: Response) -> None:
    assert r.status == 404


def verify405(r: Response) -> None:
    assert r.status == 405
    assert not r["content-type"]
    assert r["allow"]
    assert not r.body


def verify_content_type(r: Response | Stream, content_type: str) -> None:
    assert (r["content-type"] or "").replace(" ", "") == content_type


def verify_options(server: ServerProcess, url: str, allowed_methods: str) -> None:
    for origin in ["test", "null"]:
        r = OPTIONS(server, url, {"Access-Control-Request-Method": allowed_methods, "Origin": origin})
        assert r.status in (200, 204)
        assert "public" in (r["Cache-Control"] or "")
        assert LONG_MAX_AGE.search(r["Cache-Control"] or ""), "max-age must be large, one year is best"
        assert r["Expires"]
        assert int(r["access-control-max-age"] or 0) > 1000000
        for method in allowed_methods.split(","):
            assert method.strip() in (r["Access-Control-Allow-Methods"] or "")
        assert not r.body
        verify_cors(r, origin)


def verify_no_cookie(r: Response | Stream) -> None:
    assert not r["Set-Cookie"]


def verify_cors(r: Response | Stream, origin: str | None = None) -> None:
    if origin:
        assert r["access-control-allow-origin"] == origin
        assert r["access-control-allow-credentials"] == "true"
    else:
        assert r["access-control-allow-origin"] == "*"
        assert not r["access-control-allow-credentials"]


def verify_not_cached(r: Response | Stream) -> None:
    assert r["Cache-Control"] == NOT_CACHED
    assert not r["Expires"]
    assert not r["Last-Modified"]


def verify_cookie(r: Response | Stream, value: str = "dummy") -> None:
    cookie = r["Set-Cookie"] or ""
    assert cookie.split(";")[0].strip() == f"JSESSIONID={value}"
    assert cookie.split(";")[1].lower().strip() == "path=/"


# --- the option and the services themselves --------------------------------------------------


def test_the_services_are_announced_at_start(services: ServerProcess) -> None:
    services.wait_for_log(
        r"SockJS conformance test services mounted at /echo, /close, /disabled_websocket_echo, "
        r"/cookie_needed_echo"
    )


def test_without_the_option_the_service_paths_are_djangos(server: ServerProcess) -> None:
    assert GET(server, ECHO).status == 404
    assert "conformance test services" not in server.text


class FakeTransport:
    """Records what a service does with its transport; the test plays the client."""

    kind = "fake"
    client_address = "test:1"

    def __init__(self) -> None:
        self.user: Any = None
        self.writes: list[list[str]] = []
        self.closed_with: tuple[int, str] | None = None
        self.aborted = False

    def start(self, user: Any, pending: bytes = b"") -> None:
        self.user = user

    def write(self, texts: list[str]) -> int:
        self.writes.append(list(texts))
        return 0

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)

    def abort(self) -> None:
        self.aborted = True


@pytest.fixture
def in_process() -> SockJSTestServices:
    return SockJSTestServices(
        SimpleNamespace(), heartbeat_delay=25, disconnect_delay=5, sockjs_url="http://static.example/s.js"
    )


def open_connection(services: SockJSTestServices, prefix: str) -> FakeTransport:
    transport = FakeTransport()
    service = services.serving(prefix + "/000/x/xhr")
    assert service is not None and service.prefix == prefix
    service.start_session(transport, {}, b"")  # type: ignore[arg-type]
    return transport


def test_an_echo_connection_echoes_and_is_forgotten_when_its_transport_ends(
    in_process: SockJSTestServices,
) -> None:
    transport = open_connection(in_process, ECHO)
    transport.user.receive("a")
    transport.user.receive("b")
    assert transport.writes == [["a"], ["b"]]
    assert len(in_process.connections) == 1
    transport.user.transport_ended("closed by the client")
    assert not in_process.connections


def test_a_close_connection_closes_at_once_with_3000(in_process: SockJSTestServices) -> None:
    transport = open_connection(in_process, CLOSE)
    assert transport.closed_with == (3000, "Go away!")
    transport.user.receive("ignored")
    assert transport.writes == []


def test_shutdown_closes_then_aborts_every_service_connection(in_process: SockJSTestServices) -> None:
    transports = [open_connection(in_process, prefix) for prefix in (ECHO, WSOFF, COOKIE)]
    in_process.close_all()
    assert [t.closed_with for t in transports] == [(1001, "server shutting down")] * 3
    in_process.abort_all()
    assert all(t.aborted for t in transports) and not in_process.connections


def test_only_the_four_prefixes_are_served(in_process: SockJSTestServices) -> None:
    assert in_process.prefixes == [ECHO, CLOSE, WSOFF, COOKIE]
    assert in_process.serving("/echoes") is None
    assert in_process.serving("/sockjs/info") is None
    assert in_process.serving(ECHO) is not None


def test_service_connections_end_when_their_clients_leave_or_their_sessions_time_out(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Real transports report their end to the services (which then forget them: see above)."""
    server = start_server(
        "--settings",
        "tests.settings",
        "--sockjs-test-services",
        "--log-level",
        "DEBUG",
        "127.0.0.1:0",
        DDDP_SOCKJS_DISCONNECT_DELAY="0.5",
    ).wait_until_listening()
    try:
        ws = ws_connect(server, ECHO + "/websocket")
        ws.send("bye")
        assert ws.recv() == "bye"
        ws.close()
        server.wait_for_log(r"echo service: websocket of 127\.0\.0\.1:\d+ ended: closed by the client")
        url = session_url(CLOSE)
        assert POST(server, url + "/xhr").body == "o\n"
        assert POST(server, url + "/xhr").body == 'c[3000,"Go away!"]\n'
        server.wait_for_log(r"close service: sockjs/xhr-polling of 127\.0\.0\.1:\d+ ended: closed", timeout=5)
    finally:
        assert server.stop() == 0


def test_a_server_with_the_services_stops_promptly_closing_their_websockets(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        "--settings", "tests.settings", "--sockjs-test-services", "127.0.0.1:0"
    ).wait_until_listening()
    raw = ws_connect(server, ECHO + "/websocket")
    framed = ws_connect(server, session_url(ECHO) + "/websocket")
    try:
        assert framed.recv() == "o"
        raw.send("still here")
        assert raw.recv() == "still here"
        started = time.monotonic()
        server.process.terminate()
        assert ws_close_of(raw) == (1001, "server shutting down")
        assert framed.recv() == 'c[1001,"server shutting down"]'
        assert server.stop() == 0
        assert time.monotonic() - started < 3
    finally:
        raw.close()
        framed.close()


# --- BaseUrlGreeting ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/"])
def test_the_base_url_greets(services: ServerProcess, suffix: str) -> None:
    """BaseUrlGreeting.test_greeting."""
    r = GET(services, ECHO + suffix)
    assert r.status == 200
    verify_content_type(r, "text/plain;charset=UTF-8")
    assert r.body == "Welcome to SockJS!\n"
    verify_no_cookie(r)


@pytest.mark.parametrize("suffix", ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"])
def test_other_simple_urls_are_404(services: ServerProcess, suffix: str) -> None:
    """BaseUrlGreeting.test_notFound."""
    verify404(GET(services, ECHO + suffix))


# --- IframePage --------------------------------------------------------------------------

IFRAME_BODY = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def verify_iframe(services: ServerProcess, url: str) -> None:
    r = GET(services, url)
    assert r.status == 200
    verify_content_type(r, "text/html;charset=UTF-8")
    assert "public" in (r["Cache-Control"] or "")
    assert LONG_MAX_AGE.search(r["Cache-Control"] or ""), "max-age must be large, one year is best"
    assert r["Expires"]
    assert r["ETag"]
    assert not r["last-modified"]
    # Exactly the suite's page, but for the (configurable) sockjs_url.
    assert r.body.strip() == IFRAME_BODY.format(sockjs_url="http://static.example/sockjs.min.js")
    verify_no_cookie(r)


@pytest.mark.parametrize(
    "suffix",
    [
        "/iframe.html",  # test_simpleUrl
        "/iframe-a.html",  # test_versionedUrl
        "/iframe-.html",
        "/iframe-0.1.2.html",
        "/iframe-0.1.2abc-dirty.2144.html",
        "/iframe-a.html?t=1234",  # test_queriedUrl
        "/iframe-0.1.2.html?t=123414",
        "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123",
    ],
)
def test_the_iframe_page_is_the_suites_strongly_cached(services: ServerProcess, suffix: str) -> None:
    """IframePage.test_simpleUrl, test_versionedUrl, test_queriedUrl."""
    verify_iframe(services, ECHO + suffix)


@pytest.mark.parametrize(
    "suffix",
    ["/iframe.htm", "/iframe", "/IFRAME.HTML", "/IFRAME", "/iframe.HTML", "/iframe.xml", "/iframe-/.html"],
)
def test_malformed_iframe_urls_are_404(services: ServerProcess, suffix: str) -> None:
    """IframePage.test_invalidUrl."""
    verify404(GET(services, ECHO + suffix))


def test_the_iframe_page_keeps_its_etag_and_answers_if_none_match_with_304(services: ServerProcess) -> None:
    """IframePage.test_cacheability."""
    r1 = GET(services, ECHO + "/iframe.html")
    r2 = GET(services, ECHO + "/iframe.html")
    assert r1["etag"] == r2["etag"]
    assert r1["etag"]
    r = GET(services, ECHO + "/iframe.html", headers={"If-None-Match": r1["etag"] or ""})
    assert r.status == 304
    assert not r["content-type"]
    assert not r.body


# --- InfoTest ----------------------------------------------------------------------------


def test_info_describes_the_server_and_is_never_cached(services: ServerProcess) -> None:
    """InfoTest.test_basic."""
    r = GET(services, ECHO + "/info", headers={"Origin": "test"})
    assert r.status == 200
    verify_content_type(r, "application/json;charset=UTF-8")
    verify_no_cookie(r)
    verify_not_cached(r)
    verify_cors(r, "test")
    data = json.loads(r.body)
    assert data["websocket"] is True
    assert data["cookie_needed"] in [True, False]
    assert data["origins"] == ["*:*"]
    assert type(data["entropy"]) is int


def test_info_entropy_changes_from_call_to_call(services: ServerProcess) -> None:
    """InfoTest.test_entropy."""
    data1 = json.loads(GET(services, ECHO + "/info").body)
    data2 = json.loads(GET(services, ECHO + "/info").body)
    assert type(data1["entropy"]) is int and type(data2["entropy"]) is int
    assert data1["entropy"] != data2["entropy"]


def test_info_answers_a_preflight(services: ServerProcess) -> None:
    """InfoTest.test_options."""
    verify_options(services, ECHO + "/info", "OPTIONS, GET")


def test_info_preflight_from_a_null_origin_echoes_null(services: ServerProcess) -> None:
    """InfoTest.test_options_null_origin."""
    r = OPTIONS(services, ECHO + "/info", {"Origin": "null", "Access-Control-Request-Method": "POST"})
    assert r.status in (200, 204)
    assert not r.body
    assert r["access-control-allow-origin"] == "null"


def test_info_of_the_disabled_websocket_service_says_websocket_false(services: ServerProcess) -> None:
    """InfoTest.test_disabled_websocket."""
    r = GET(services, WSOFF + "/info")
    assert r.status == 200
    assert json.loads(r.body)["websocket"] is False


# --- SessionURLs -------------------------------------------------------------------------


@pytest.mark.parametrize("session_part", ["/a/a", "/_/_", "/1/", "/abcdefgh_i-j%20/abcdefg_i-j%20"])
def test_any_server_and_session_values_open_a_session(services: ServerProcess, session_part: str) -> None:
    """SessionURLs.test_anyValue."""
    r = POST(services, ECHO + session_part + uuid.uuid4().hex[:6] + "/xhr")
    assert r.status == 200
    assert r.body == "o\n"


@pytest.mark.parametrize("suffix", ["//", "/a./a", "/a/a.", "/./.", "/", "///"])
def test_invalid_session_paths_are_404(services: ServerProcess, suffix: str) -> None:
    """SessionURLs.test_invalidPaths."""
    verify404(GET(services, ECHO + suffix + "/xhr"))
    verify404(POST(services, ECHO + suffix + "/xhr"))


def test_the_server_id_is_ignored(services: ServerProcess) -> None:
    """SessionURLs.test_ignoringServerId."""
    session_id = str(uuid.uuid4())
    r = POST(services, f"{ECHO}/000/{session_id}/xhr")
    assert (r.status, r.body) == (200, "o\n")
    r = POST(services, f"{ECHO}/000/{session_id}/xhr_send", '["a"]')
    assert r.status == 204
    assert not r.body
    r = POST(services, f"{ECHO}/999/{session_id}/xhr")
    assert (r.status, r.body) == (200, 'a["a"]\n')


# --- Protocol ----------------------------------------------------------------------------


def test_a_session_opens_echoes_and_refuses_a_second_receiver(services: ServerProcess) -> None:
    """Protocol.test_simpleSession."""
    trans_url = session_url(ECHO)
    r = POST(services, trans_url + "/xhr")
    assert (r.status, r.body) == (200, "o\n")
    r = POST(services, trans_url + "/xhr_send", '["a"]')
    assert r.status == 204
    assert not r.body
    r = POST(services, trans_url + "/xhr")
    assert (r.status, r.body) == (200, 'a["a"]\n')
    verify404(POST(services, ECHO + "/000/bad_session/xhr_send", '["a"]'))
    # Two receiving connections may not wait on one session: the second gets 2010.
    r1 = http.client.HTTPConnection("127.0.0.1", services.port, timeout=TIMEOUT)
    try:
        r1.request("POST", trans_url + "/xhr")
        time.sleep(0.25)
        r2 = POST(services, trans_url + "/xhr")
        assert r2.body == 'c[2010,"Another connection still open"]\n'
        assert r2.status == 200
    finally:
        r1.close()


def test_the_close_service_answers_every_poll_with_its_close_frame(services: ServerProcess) -> None:
    """Protocol.test_closeSession."""
    trans_url = session_url(CLOSE)
    r = POST(services, trans_url + "/xhr")
    assert (r.status, r.body) == (200, "o\n")
    r = POST(services, trans_url + "/xhr")
    assert (r.status, r.body) == (200, 'c[3000,"Go away!"]\n')
    r = POST(services, trans_url + "/xhr")
    assert (r.status, r.body) == (200, 'c[3000,"Go away!"]\n')


# --- WebsocketHttpErrors -----------------------------------------------------------------


def test_a_plain_get_of_the_websocket_url_is_400(services: ServerProcess) -> None:
    """WebsocketHttpErrors.test_httpMethod."""
    assert GET(services, ECHO + "/0/0/websocket").status == 400


def test_a_websocket_request_with_connection_close_is_400(services: ServerProcess) -> None:
    """WebsocketHttpErrors.test_invalidConnectionHeader."""
    r = GET(services, ECHO + "/0/0/websocket", headers={"Upgrade": "WebSocket", "Connection": "close"})
    assert r.status == 400
    assert "Not a valid websocket request" in r.body


@pytest.mark.parametrize(
    "headers", [{"Upgrade": "WebSocket", "Connection": "Upgrade"}, {}], ids=["upgrade", "plain"]
)
def test_a_post_to_the_websocket_url_is_405(services: ServerProcess, headers: dict[str, str]) -> None:
    """WebsocketHttpErrors.test_invalidMethod."""
    verify405(POST(services, ECHO + "/0/0/websocket", headers=headers))


# --- Websocket ---------------------------------------------------------------------------


def test_the_websocket_opens_and_echoes(services: ServerProcess) -> None:
    """Websocket.test_transport."""
    ws = ws_connect(services, session_url(ECHO) + "/websocket")
    try:
        assert ws.recv() == "o"
        ws.send('["a"]')
        assert ws.recv() == 'a["a"]'
    finally:
        ws.close()


def test_the_close_service_websocket_sends_its_close_frame_then_closes(services: ServerProcess) -> None:
    """Websocket.test_close."""
    ws = ws_connect(services, session_url(CLOSE) + "/websocket")
    try:
        assert ws.recv() == "o"
        assert ws.recv() == 'c[3000,"Go away!"]'
        ws_close_of(ws)  # the connection is closed after the close frame: no data frame comes
    finally:
        ws.close()


def test_the_websocket_handshake_is_rfc_6455(services: ServerProcess) -> None:
    """Websocket.test_headersSanity."""
    raw = RawHTTP(services)
    try:
        _, status, headers = raw.request(
            "GET",
            session_url(ECHO) + "/websocket",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Origin": "http://asd",
                "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw==",
            },
        )
        assert status == 101
        assert headers["sec-websocket-accept"] == "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
        assert headers["connection"].lower() == "upgrade"
        assert headers["upgrade"].lower() == "websocket"
        assert not headers.get("content-length")
    finally:
        raw.close()


def test_the_websocket_ignores_empty_frames(services: ServerProcess) -> None:
    """Websocket.test_empty_frame."""
    ws = ws_connect(services, session_url(ECHO) + "/websocket")
    try:
        assert ws.recv() == "o"
        ws.send("")
        ws.send("[]")
        ws.send('["a"]')
        assert ws.recv() == 'a["a"]'
    finally:
        ws.close()


def test_concurrent_websockets_may_share_a_session_id_and_reuse_it(services: ServerProcess) -> None:
    """Websocket.test_reuseSessionId."""
    ws_url = session_url(ECHO) + "/websocket"
    ws1, ws2 = ws_connect(services, ws_url), ws_connect(services, ws_url)
    try:
        assert ws1.recv() == "o"
        assert ws2.recv() == "o"
        ws1.send('["a"]')
        assert ws1.recv() == 'a["a"]'
        ws2.send('["b"]')
        assert ws2.recv() == 'a["b"]'
    finally:
        ws1.close()
        ws2.close()
    ws1 = ws_connect(services, ws_url)
    try:
        assert ws1.recv() == "o"
        ws1.send('["a"]')
        assert ws1.recv() == 'a["a"]'
    finally:
        ws1.close()


def test_broken_json_on_the_websocket_ends_the_connection(services: ServerProcess) -> None:
    """Websocket.test_broken_json: the server terminates the connection (its close frame may come first)."""
    ws = ws_connect(services, session_url(ECHO) + "/websocket")
    try:
        assert ws.recv() == "o"
        ws.send('["a')
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            assert data.decode().startswith("c["), data
            ws_close_of(ws)
        else:
            assert opcode == websocket.ABNF.OPCODE_CLOSE
    except websocket.WebSocketConnectionClosedException:
        pass
    finally:
        ws.close()


# --- XhrPolling --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/xhr", "/xhr_send"])
def test_xhr_urls_answer_preflights(services: ServerProcess, suffix: str) -> None:
    """XhrPolling.test_options."""
    verify_options(services, ECHO + "/abc/abc" + suffix, "OPTIONS, POST")


def test_xhr_polling_carries_cors_and_no_cache_both_ways(services: ServerProcess) -> None:
    """XhrPolling.test_transport."""
    url = session_url(ECHO)
    r = POST(services, url + "/xhr", headers={"Origin": "test"})
    assert (r.status, r.body) == (200, "o\n")
    verify_content_type(r, "application/javascript;charset=UTF-8")
    verify_cors(r, "test")
    verify_not_cached(r)
    r = POST(services, url + "/xhr_send", '["x"]', headers={"Origin": "test"})
    assert r.status == 204
    assert not r.body
    verify_content_type(r, "text/plain;charset=UTF-8")
    verify_cors(r, "test")
    verify_not_cached(r)
    r = POST(services, url + "/xhr")
    assert (r.status, r.body) == (200, 'a["x"]\n')


def test_xhr_send_to_an_unknown_session_is_404(services: ServerProcess) -> None:
    """XhrPolling.test_invalid_session."""
    verify404(POST(services, session_url(ECHO) + "/xhr_send", '["x"]'))


def test_xhr_send_of_broken_or_no_json_is_500_and_the_session_goes_on(services: ServerProcess) -> None:
    """XhrPolling.test_invalid_json."""
    url = session_url(ECHO)
    r = POST(services, url + "/xhr")
    assert (r.status, r.body) == (200, "o\n")
    r = POST(services, url + "/xhr_send", '["x')
    assert r.status == 500
    assert "Broken JSON encoding." in r.body
    r = POST(services, url + "/xhr_send", "")
    assert r.status == 500
    assert "Payload expected." in r.body
    r = POST(services, url + "/xhr_send", '["a"]')
    assert not r.body
    assert r.status == 204
    r = POST(services, url + "/xhr")
    assert (r.status, r.body) == (200, 'a["a"]\n')


def test_xhr_send_accepts_any_content_type(services: ServerProcess) -> None:
    """XhrPolling.test_content_types."""
    url = session_url(ECHO)
    assert POST(services, url + "/xhr").body == "o\n"
    ctypes = [
        "text/plain",
        "T",
        "application/json",
        "application/xml",
        "",
        "application/json; charset=utf-8",
        "text/xml; charset=utf-8",
        "text/xml",
    ]
    for ct in ctypes:
        r = POST(services, url + "/xhr_send", '["a"]', headers={"Content-Type": ct})
        assert r.status == 204
        assert not r.body
    r = POST(services, url + "/xhr")
    assert (r.status, r.body) == (200, "a[" + ",".join(['"a"'] * len(ctypes)) + "]\n")


def test_xhr_preflight_echoes_the_requested_headers(services: ServerProcess) -> None:
    """XhrPolling.test_request_headers_cors."""
    asked = {"Origin": "test", "Access-Control-Request-Method": "POST"}
    r = OPTIONS(services, session_url(ECHO) + "/xhr", {**asked, "Access-Control-Request-Headers": "a, b, c"})
    assert r.status in (200, 204)
    verify_cors(r, "test")
    assert r["Access-Control-Allow-Headers"] == "a, b, c"
    r = OPTIONS(services, session_url(ECHO) + "/xhr", {**asked, "Access-Control-Request-Headers": ""})
    assert r.status in (200, 204)
    verify_cors(r, "test")
    assert not r["Access-Control-Allow-Headers"]
    r = OPTIONS(services, session_url(ECHO) + "/xhr", asked)
    assert r.status in (200, 204)
    verify_cors(r, "test")
    assert not r["Access-Control-Allow-Headers"]


def test_xhr_send_of_an_empty_frame_is_allowed(services: ServerProcess) -> None:
    """XhrPolling.test_sending_empty_frame."""
    url = session_url(ECHO)
    r = POST(services, url + "/xhr")
    assert (r.status, r.body) == (200, "o\n")
    assert POST(services, url + "/xhr_send", "[]").status == 204
    assert POST(services, url + "/xhr_send", '["a"]').status == 204
    r = POST(services, url + "/xhr")
    assert (r.status, r.body) == (200, 'a["a"]\n')


# --- XhrStreaming ------------------------------------------------------------------------


def test_xhr_streaming_answers_a_preflight(services: ServerProcess) -> None:
    """XhrStreaming.test_options."""
    verify_options(services, ECHO + "/abc/abc/xhr_streaming", "OPTIONS, POST")


def test_xhr_streaming_sends_its_prelude_then_frames_as_they_come(services: ServerProcess) -> None:
    """XhrStreaming.test_transport."""
    url = session_url(ECHO)
    r = Stream(services, "POST", url + "/xhr_streaming", headers={"Origin": "test"})
    try:
        assert r.status == 200
        verify_content_type(r, "application/javascript;charset=UTF-8")
        verify_cors(r, "test")
        verify_not_cached(r)
        assert r.read_until("\n") == "h" * 2048 + "\n"
        assert r.read_until("\n") == "o\n"
        r1 = POST(services, url + "/xhr_send", '["x"]')
        assert r1.status == 204
        assert not r1.body
        assert r.read_until("\n") == 'a["x"]\n'
    finally:
        r.close()


def test_xhr_streaming_ends_its_response_past_the_response_limit(services: ServerProcess) -> None:
    """XhrStreaming.test_response_limit: the test server's limit is 4096 bytes, framing included."""
    url = session_url(ECHO)
    r = Stream(services, "POST", url + "/xhr_streaming")
    try:
        assert r.status == 200
        assert r.read_until("\n")  # prelude
        assert r.read_until("\n") == "o\n"
        msg = '"' + "x" * 128 + '"'
        for _ in range(31):
            r1 = POST(services, url + "/xhr_send", "[" + msg + "]")
            assert r1.status == 204
            assert r.read_until("\n") == "a[" + msg + "]\n"
        assert r.ended()
    finally:
        r.close()


# --- EventSource -------------------------------------------------------------------------


def test_eventsource_sends_its_prelude_then_frames_as_events(services: ServerProcess) -> None:
    """EventSource.test_transport."""
    url = session_url(ECHO)
    r = Stream(services, "GET", url + "/eventsource")
    try:
        assert r.status == 200
        verify_content_type(r, "text/event-stream")
        verify_not_cached(r)
        assert r.read_until("\r\n") == "\r\n"
        assert r.read_until("\r\n\r\n") == "data: o\r\n\r\n"
        r1 = POST(services, url + "/xhr_send", '["x"]')
        assert not r1.body
        assert r1.status == 204
        assert r.read_until("\r\n\r\n") == 'data: a["x"]\r\n\r\n'
        r1 = POST(services, url + "/xhr_send", r'["  \u0000\n\r "]')
        assert not r1.body
        assert r1.status == 204
        assert r.read_until("\r\n\r\n") == 'data: a["  \\u0000\\n\\r "]\r\n\r\n'
    finally:
        r.close()


def test_eventsource_ends_its_response_past_the_response_limit(services: ServerProcess) -> None:
    """EventSource.test_response_limit."""
    url = session_url(ECHO)
    r = Stream(services, "GET", url + "/eventsource")
    try:
        assert r.status == 200
        assert r.read_until("\r\n")  # prelude
        assert r.read_until("\r\n\r\n") == "data: o\r\n\r\n"
        msg = '"' + "x" * 4096 + '"'
        r1 = POST(services, url + "/xhr_send", "[" + msg + "]")
        assert r1.status == 204
        assert r.read_until("\r\n\r\n") == "data: a[" + msg + "]\r\n\r\n"
        assert r.ended()
    finally:
        r.close()


# --- HtmlFile ----------------------------------------------------------------------------

HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"""


def test_htmlfile_sends_its_page_then_frames_as_scripts(services: ServerProcess) -> None:
    """HtmlFile.test_transport."""
    url = session_url(ECHO)
    r = Stream(services, "GET", url + "/htmlfile?c=%63allback")
    try:
        assert r.status == 200
        verify_content_type(r, "text/html;charset=UTF-8")
        verify_not_cached(r)
        d = r.read_until("\r\n\r\n")
        assert d.strip() == HTMLFILE_HEAD.format(callback="callback")
        assert len(d) > 1024
        assert r.read_until("</script>\r\n") == '<script>\np("o");\n</script>\r\n'
        r1 = POST(services, url + "/xhr_send", '["x"]')
        assert not r1.body
        assert r1.status == 204
        assert r.read_until("</script>\r\n") == '<script>\np("a[\\"x\\"]");\n</script>\r\n'
    finally:
        r.close()


def test_htmlfile_without_a_callback_is_500(services: ServerProcess) -> None:
    """HtmlFile.test_no_callback."""
    r = GET(services, ECHO + "/a/a/htmlfile")
    assert r.status == 500
    assert '"callback" parameter required' in r.body


@pytest.mark.parametrize("callback", ["%20", "*", "abc(", "abc%28"])
def test_htmlfile_with_an_invalid_callback_is_500(services: ServerProcess, callback: str) -> None:
    """HtmlFile.test_invalid_callback."""
    r = GET(services, ECHO + "/a/a/htmlfile?c=" + callback)
    assert r.status == 500
    assert 'invalid "callback" parameter' in r.body


def test_htmlfile_ends_its_response_past_the_response_limit(services: ServerProcess) -> None:
    """HtmlFile.test_response_limit."""
    url = session_url(ECHO)
    r = Stream(services, "GET", url + "/htmlfile?c=callback")
    try:
        assert r.status == 200
        assert r.read_until("\r\n\r\n")  # prelude
        assert r.read_until("</script>\r\n") == '<script>\np("o");\n</script>\r\n'
        msg = "x" * 4096
        r1 = POST(services, url + "/xhr_send", '["' + msg + '"]')
        assert r1.status == 204
        assert r.read_until("</script>\r\n") == '<script>\np("a[\\"' + msg + '\\"]");\n</script>\r\n'
        assert r.ended()
    finally:
        r.close()


# --- JsonPolling -------------------------------------------------------------------------


def test_jsonp_polling_calls_back_and_is_never_cached(services: ServerProcess) -> None:
    """JsonPolling.test_transport."""
    url = session_url(ECHO)
    r = GET(services, url + "/jsonp?c=%63allback")
    assert r.status == 200
    verify_content_type(r, "application/javascript;charset=UTF-8")
    verify_not_cached(r)
    assert r.body == '/**/callback("o");\r\n'
    r = POST(services, url + "/jsonp_send", "d=%5B%22x%22%5D", headers=FORM)
    assert r.body == "ok"
    assert r.status == 200
    verify_content_type(r, "text/plain;charset=UTF-8")
    verify_not_cached(r)
    r = GET(services, url + "/jsonp?c=%63allback")
    assert r.status == 200
    assert r.body == '/**/callback("a[\\"x\\"]");\r\n'


def test_jsonp_without_a_callback_is_500(services: ServerProcess) -> None:
    """JsonPolling.test_no_callback."""
    r = GET(services, ECHO + "/a/a/jsonp")
    assert r.status == 500
    assert '"callback" parameter required' in r.body


@pytest.mark.parametrize("callback", ["%20", "*", "abc(", "abc%28"])
def test_jsonp_with_an_invalid_callback_is_500(services: ServerProcess, callback: str) -> None:
    """JsonPolling.test_invalid_callback."""
    r = GET(services, ECHO + "/a/a/jsonp?c=" + callback)
    assert r.status == 500
    assert 'invalid "callback" parameter' in r.body


def test_jsonp_send_of_broken_or_no_json_is_500_and_the_session_goes_on(services: ServerProcess) -> None:
    """JsonPolling.test_invalid_json."""
    url = session_url(ECHO)
    assert GET(services, url + "/jsonp?c=x").body == '/**/x("o");\r\n'
    r = POST(services, url + "/jsonp_send", "d=%5B%22x", headers=FORM)
    assert r.status == 500
    assert "Broken JSON encoding." in r.body
    for data in ["", "d=", "p=p"]:
        r = POST(services, url + "/jsonp_send", data, headers=FORM)
        assert r.status == 500
        assert "Payload expected." in r.body
    assert POST(services, url + "/jsonp_send", "d=%5B%22b%22%5D", headers=FORM).body == "ok"
    r = GET(services, url + "/jsonp?c=x")
    assert r.status == 200
    assert r.body == '/**/x("a[\\"b\\"]");\r\n'


def test_jsonp_send_takes_a_form_or_a_raw_body(services: ServerProcess) -> None:
    """JsonPolling.test_content_types."""
    url = session_url(ECHO)
    assert GET(services, url + "/jsonp?c=x").body == '/**/x("o");\r\n'
    assert POST(services, url + "/jsonp_send", "d=%5B%22abc%22%5D", headers=FORM).body == "ok"
    r = POST(services, url + "/jsonp_send", '["%61bc"]', headers={"Content-Type": "text/plain"})
    assert r.body == "ok"
    r = GET(services, url + "/jsonp?c=x")
    assert r.status == 200
    assert r.body == '/**/x("a[\\"abc\\",\\"%61bc\\"]");\r\n'


def test_jsonp_of_the_close_service_answers_its_close_frame_again_and_again(services: ServerProcess) -> None:
    """JsonPolling.test_close."""
    url = session_url(CLOSE)
    assert GET(services, url + "/jsonp?c=x").body == '/**/x("o");\r\n'
    assert GET(services, url + "/jsonp?c=x").body == '/**/x("c[3000,\\"Go away!\\"]");\r\n'
    assert GET(services, url + "/jsonp?c=x").body == '/**/x("c[3000,\\"Go away!\\"]");\r\n'


def test_jsonp_send_of_an_empty_frame_is_allowed(services: ServerProcess) -> None:
    """JsonPolling.test_sending_empty_frame."""
    url = session_url(ECHO)
    assert GET(services, url + "/jsonp?c=x").body == '/**/x("o");\r\n'
    assert POST(services, url + "/jsonp_send", "d=%5B%5D", headers=FORM).body == "ok"
    assert POST(services, url + "/jsonp_send", "d=%5B%22x%22%5D", headers=FORM).body == "ok"
    r = GET(services, url + "/jsonp?c=x")
    assert r.status == 200
    assert r.body == '/**/x("a[\\"x\\"]");\r\n'


# --- JsessionidCookie --------------------------------------------------------------------


def test_info_of_the_cookie_service_says_cookie_needed_and_sets_none(services: ServerProcess) -> None:
    """JsessionidCookie.test_basic."""
    r = GET(services, COOKIE + "/info")
    assert r.status == 200
    verify_no_cookie(r)
    assert json.loads(r.body)["cookie_needed"] is True


def test_xhr_of_the_cookie_service_sets_jsessionid_or_echoes_the_clients(services: ServerProcess) -> None:
    """JsessionidCookie.test_xhr."""
    r = POST(services, session_url(COOKIE) + "/xhr")
    assert (r.status, r.body) == (200, "o\n")
    verify_cookie(r)
    r = POST(services, session_url(COOKIE) + "/xhr", headers={"Cookie": "JSESSIONID=abcdef"})
    assert (r.status, r.body) == (200, "o\n")
    verify_cookie(r, "abcdef")


@pytest.mark.parametrize(
    ("method", "transport"),
    [("POST", "/xhr_streaming"), ("GET", "/eventsource"), ("GET", "/htmlfile?c=%63allback")],
    ids=["xhr_streaming", "eventsource", "htmlfile"],
)
def test_streaming_of_the_cookie_service_sets_jsessionid(
    services: ServerProcess, method: str, transport: str
) -> None:
    """JsessionidCookie.test_xhr_streaming, test_eventsource, test_htmlfile."""
    r = Stream(services, method, session_url(COOKIE) + transport)
    try:
        assert r.status == 200
        verify_cookie(r)
    finally:
        r.close()


def test_jsonp_of_the_cookie_service_sets_jsessionid_both_ways(services: ServerProcess) -> None:
    """JsessionidCookie.test_jsonp."""
    url = session_url(COOKIE)
    r = GET(services, url + "/jsonp?c=%63allback")
    assert r.status == 200
    verify_cookie(r)
    assert r.body == '/**/callback("o");\r\n'
    r = POST(services, url + "/jsonp_send", "d=%5B%22x%22%5D", headers=FORM)
    assert r.body == "ok"
    assert r.status == 200
    verify_cookie(r)


# --- RawWebsocket ------------------------------------------------------------------------


def test_the_raw_websocket_echoes_text_as_is(services: ServerProcess) -> None:
    """RawWebsocket.test_transport."""
    ws = ws_connect(services, ECHO + "/websocket")
    try:
        ws.send("Hello world!\uffff")
        assert ws.recv() == "Hello world!\uffff"
    finally:
        ws.close()


def test_the_raw_websocket_of_the_close_service_closes_with_go_away(services: ServerProcess) -> None:
    """RawWebsocket.test_close."""
    ws = ws_connect(services, CLOSE + "/websocket")
    try:
        close = ws_close_of(ws)
        assert close is not None and close[1] == "Go away!"
    finally:
        ws.close()


# --- JSONEncoding ------------------------------------------------------------------------

# S-16: what the server must escape, above U+00FF (the suite's `escapable_by_server`).
SERVER_ESCAPES = [
    code
    for first, last in [(0x200C, 0x200F), (0x2028, 0x202F), (0x2060, 0x206F), (0xFFF0, 0xFFFF)]
    for code in range(first, last + 1)
]


def test_the_server_escapes_what_it_must(services: ServerProcess) -> None:
    """JSONEncoding.test_xhr_server_encodes: sent raw, the characters come back escaped."""
    escaped = '"' + "".join(f"\\u{code:04x}" for code in SERVER_ESCAPES) + '"'
    trans_url = session_url(ECHO)
    assert POST(services, trans_url + "/xhr").body == "o\n"
    payload = '["' + json.loads(escaped) + '"]'
    assert POST(services, trans_url + "/xhr_send", payload.encode("utf-8")).status == 204
    r = POST(services, trans_url + "/xhr")
    assert r.status == 200
    assert r.body.strip()[2:-1] == escaped


def test_the_server_decodes_every_escaped_character(services: ServerProcess) -> None:
    """JSONEncoding.test_xhr_server_decodes, with every BMP code point (surrogates included)."""
    escaped = '"' + "".join(f"\\u{code:04x}" for code in range(0x10000)) + '"'
    trans_url = session_url(ECHO)
    assert POST(services, trans_url + "/xhr").body == "o\n"
    assert POST(services, trans_url + "/xhr_send", "[" + escaped + "]").status == 204
    r = POST(services, trans_url + "/xhr")
    assert r.status == 200
    assert json.loads(r.body.strip()[2:-1]) == json.loads(escaped)


# --- HandlingClose -----------------------------------------------------------------------


def test_a_closed_session_answers_a_new_request_with_its_close_frame(services: ServerProcess) -> None:
    """HandlingClose.test_close_frame."""
    url = session_url(CLOSE)
    r1 = Stream(services, "POST", url + "/xhr_streaming")
    r2: Stream | None = None
    try:
        r1.read_until("\n")  # prelude
        assert r1.read_until("\n") == "o\n"
        assert r1.read_until("\n") == 'c[3000,"Go away!"]\n'
        r2 = Stream(services, "POST", url + "/xhr_streaming")
        r2.read_until("\n")  # prelude
        assert r2.read_until("\n") == 'c[3000,"Go away!"]\n'
        assert r1.ended()
        assert r2.ended()
    finally:
        r1.close()
        if r2 is not None:
            r2.close()


def test_a_second_streaming_receiver_gets_2010_and_its_response_ends(services: ServerProcess) -> None:
    """HandlingClose.test_close_request."""
    url = session_url(ECHO)
    r1 = Stream(services, "POST", url + "/xhr_streaming")
    try:
        r1.read_until("\n")  # prelude
        assert r1.read_until("\n") == "o\n"
        r2 = Stream(services, "POST", url + "/xhr_streaming")
        try:
            r2.read_until("\n")  # prelude
            assert r2.read_until("\n") == 'c[2010,"Another connection still open"]\n'
            assert r2.ended()
        finally:
            r2.close()
    finally:
        r1.close()


def test_after_an_aborted_streaming_request_the_next_gets_o_or_1002(services: ServerProcess) -> None:
    """HandlingClose.test_abort_xhr_streaming."""
    url = session_url(ECHO)
    r1 = Stream(services, "POST", url + "/xhr_streaming")
    r1.read_until("\n")  # prelude
    assert r1.read_until("\n") == "o\n"
    r2 = Stream(services, "POST", url + "/xhr_streaming")
    try:
        r2.read_until("\n")  # prelude
        assert r2.read_until("\n") == 'c[2010,"Another connection still open"]\n'
        assert r2.ended()
    finally:
        r2.close()
    r1.close()
    r3 = Stream(services, "POST", url + "/xhr_streaming")
    try:
        r3.read_until("\n")  # prelude
        assert r3.read_until("\n") in ["o\n", 'c[1002,"Connection interrupted"]\n']
    finally:
        r3.close()


def test_after_an_aborted_poll_the_next_gets_o_or_1002(services: ServerProcess) -> None:
    """HandlingClose.test_abort_xhr_polling."""
    url = session_url(ECHO)
    assert POST(services, url + "/xhr").body == "o\n"
    r1 = http.client.HTTPConnection("127.0.0.1", services.port, timeout=TIMEOUT)
    r1.request("POST", url + "/xhr")
    time.sleep(0.25)
    r2 = POST(services, url + "/xhr")
    assert r2.body == 'c[2010,"Another connection still open"]\n'
    r1.close()
    r3 = POST(services, url + "/xhr")
    assert r3.body in ["o\n", 'c[1002,"Connection interrupted"]\n']


# --- Http10, Http11 ----------------------------------------------------------------------


@pytest.fixture
def raw(services: ServerProcess) -> Iterator[RawHTTP]:
    connection = RawHTTP(services)
    yield connection
    connection.close()


def test_http_1_0_gets_a_length_or_a_close_and_no_chunks(services: ServerProcess, raw: RawHTTP) -> None:
    """Http10.test_synchronous."""
    version, status, headers = raw.request("GET", ECHO, http="1.0", headers={"Connection": "Keep-Alive"})
    assert status == 200
    assert version in ["1.0", "1.1"]
    assert not headers.get("transfer-encoding")
    if not headers.get("content-length"):
        assert headers["connection"].lower() == "close"
        assert raw.read(19) == "Welcome to SockJS!\n"
        assert raw.closed()
    else:
        assert int(headers["content-length"]) == 19
        assert raw.read(19) == "Welcome to SockJS!\n"
        connection = headers.get("connection", "").lower()
        if connection in ["close", ""]:
            assert raw.closed()
        else:
            assert connection == "keep-alive"
            _, status, _ = raw.request("GET", ECHO, http="1.0", headers={"Connection": "Keep-Alive"})
            assert status == 200


def test_http_1_0_streaming_has_no_length_no_chunks_and_ends_with_a_close(
    services: ServerProcess, raw: RawHTTP
) -> None:
    """Http10.test_streaming."""
    url = session_url(CLOSE)
    _, status, headers = raw.request(
        "POST", url + "/xhr_streaming", http="1.0", headers={"Connection": "Keep-Alive"}
    )
    assert status == 200
    assert not headers.get("transfer-encoding")
    assert not headers.get("content-length")
    assert raw.read(2048 + 1)[0] == "h"  # prelude
    assert raw.read(2) == "o\n"
    assert raw.read(19) == 'c[3000,"Go away!"]\n'
    assert raw.closed()


def test_http_1_1_keeps_the_connection_alive(services: ServerProcess, raw: RawHTTP) -> None:
    """Http11.test_synchronous."""
    version, _, headers = raw.request("GET", ECHO, http="1.1", headers={"Connection": "Keep-Alive"})
    assert version == "1.1"
    assert headers.get("connection", "").lower() in ["keep-alive", ""], "no Connection: Keep-Alive support"
    if headers.get("content-length"):
        assert int(headers["content-length"]) == 19
        assert raw.read(19) == "Welcome to SockJS!\n"
        assert not headers.get("transfer-encoding")
    else:
        assert headers["transfer-encoding"].lower() == "chunked"
        assert raw.read_chunk() == "Welcome to SockJS!\n"
        assert raw.read_chunk() == ""
    _, status, _ = raw.request("GET", ECHO, http="1.1", headers={"Connection": "Keep-Alive"})
    assert status == 200


def test_http_1_1_streaming_is_chunked_frame_by_frame(services: ServerProcess, raw: RawHTTP) -> None:
    """Http11.test_streaming."""
    url = session_url(CLOSE)
    _, status, headers = raw.request(
        "POST", url + "/xhr_streaming", http="1.1", headers={"Connection": "Keep-Alive"}
    )
    assert status == 200
    assert headers.get("transfer-encoding")
    assert not headers.get("content-length")
    assert raw.read_chunk()[0] == "h"  # prelude
    assert raw.read_chunk() == "o\n"
    assert raw.read_chunk() == 'c[3000,"Go away!"]\n'
    assert raw.read_chunk() == ""
