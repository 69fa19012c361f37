"""A real browser (Debian's Chromium, driven by Playwright) reaching dddp through SockJS from another origin.

The page is served by this test on its own origin (`localhost:<port>`, while
dddp is `127.0.0.1:<port>`), and loads the npm sockjs-client 1.6.1 bundle
(what current Meteor bundles) from there. For each transport, forced in turn
(websocket, xhr-streaming, xhr-polling, eventsource, iframe-eventsource,
iframe-htmlfile, iframe-xhr-polling, jsonp-polling): connect, subscribe,
receive a change this test process commits, call a method, and stay connected
over several heartbeat periods (DDP pings answered and, on the HTTP transports,
SockJS `h` frames received). A transport that fails because of a dddp bug is
in SERVER_BUGS: a strict xfail, saying what is wrong.

Forced to one transport it cannot use, sockjs-client closes (2000, "All
transports failed"); given more than one it moves on to the next that works
(from eventsource to xhr-polling, say). So each test checks what was really
used, three ways: `sock.transport` in the page (the name of the transport that
opened), the requests the browser made (the session URLs it received and sent
on, from the page itself or, for the iframe transports, from dddp's iframe),
and the transport kind dddp logged for the one session it opened.

The iframe transports load `/sockjs/iframe.html` from dddp, which loads the
client from DDDP_SOCKJS_URL: the server is started with it pointing at this
test's bundle, on the page's origin, so the iframe runs the same 1.6.1 (the
client refuses an iframe of another version).

Chromium is installed by tests/run.py when run as root; without it (or
Playwright) the tests are skipped and say so. Nothing downloads a browser.

The scenario and its checks (`check_live_data_and_methods`, with the page, its
server and the trace) are shared with test_browser_sockjs03.py, which runs them
with sockjs-client 0.3.1, the line Meteor 1.x bundles; a `Client` says how each
build is loaded, forced and asked which transport it opened.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.nodejs import NODE_DIR
from tests.server_process import ServerProcess
from tests.testapp.models import Note

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SOCKJS_BUNDLE = NODE_DIR / "node_modules" / "sockjs-client" / "dist" / "sockjs.min.js"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="Playwright is not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium at /usr/bin/chromium"),
    pytest.mark.skipif(
        not SOCKJS_BUNDLE.exists(), reason=f"{SOCKJS_BUNDLE} is missing: npm ci in tests/node"
    ),
    pytest.mark.django_db(transaction=True),
]

#: The flags this machine's Chromium needs as root and offline (see the env notes).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Client:
    """A sockjs-client build: where the page server has it, how the page forces a transport on it,
    and how the open socket names the transport it uses."""

    version: str  # its `SockJS.version` (its iframe transports refuse an iframe of another one)
    file: Path  # the script
    path: str  # where the page server has it; dddp's iframe page loads it from there too
    force: str  # the constructor option that lists the transports allowed
    opened: str  # the socket's attribute that names the transport once open


#: The npm sockjs-client 1.6.1 bundle (what current Meteor bundles).
CLIENT = Client("1.6.1", SOCKJS_BUNDLE, "/sockjs.min.js", force="transports", opened="transport")

#: The test page; SCRIPT is the client's path on the page server.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script src="SCRIPT"></script></head>
<body><script>
window.events = [];
window.pings = 0;
window.heartbeats = 0;
window.start = function (url, options, opened, text) {
  const sock = new SockJS(url, null, options);
  const send = (message) => sock.send(JSON.stringify(message));
  window.ddp = {send: send, sock: sock};
  sock.onopen = () => {
    window.transport = sock[opened];
    send({msg: 'connect', version: '1', support: ['1']});
  };
  sock.onheartbeat = () => { window.heartbeats += 1; };
  sock.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.msg === 'ping') { send({msg: 'pong'}); window.pings += 1; return; }
    window.events.push(message);
    if (message.msg === 'connected') send({msg: 'sub', id: 's', name: 'NotesByText', params: [text]});
  };
  sock.onclose = (event) => { window.closeEvent = [event.code, event.reason]; };
};
</script></body></html>
"""


@dataclass(frozen=True)
class Transport:
    """A sockjs-client transport, and how it shows on the wire and in dddp's log."""

    name: str  # sockjs-client's, as forced and as the open socket names it (`Client.opened`)
    kind: str  # what dddp logs for the session ("connection N opened from ... (kind)")
    receiving: str  # the last segment of the session URL the client receives on
    sending: str | None  # ... and sends on (None: the same WebSocket)
    iframe: bool = False  # run from dddp's iframe page, not the page itself


TRANSPORTS = [
    Transport("websocket", "sockjs/websocket", "websocket", None),
    Transport("xhr-streaming", "sockjs/xhr-streaming", "xhr_streaming", "xhr_send"),
    Transport("xhr-polling", "sockjs/xhr-polling", "xhr", "xhr_send"),
    Transport("eventsource", "sockjs/eventsource", "eventsource", "xhr_send"),
    Transport("iframe-eventsource", "sockjs/eventsource", "eventsource", "xhr_send", iframe=True),
    Transport("iframe-htmlfile", "sockjs/htmlfile", "htmlfile", "xhr_send", iframe=True),
    Transport("iframe-xhr-polling", "sockjs/xhr-polling", "xhr", "xhr_send", iframe=True),
    Transport("jsonp-polling", "sockjs/jsonp-polling", "jsonp", "jsonp_send"),
]

#: Transports that fail against dddp today, and why (strict: the day they pass, this must go).
SERVER_BUGS: dict[str, str] = {}  # transport name -> what dddp gets wrong (none known)

OPENED = re.compile(r"connection \d+ opened from \S+ \((\S+)\)")
SESSION_URL = re.compile(r"/sockjs/[^/.]+/[^/.]+/([a-z_]+)(?:\?|$)")


def page_files(client: Client) -> dict[str, tuple[bytes, str]]:
    """The test page at `/`, loading `client`, and the client at its path: path -> (body, type)."""
    page = PAGE.replace("SCRIPT", client.path)
    return {
        "/": (page.encode(), "text/html; charset=utf-8"),
        client.path: (client.file.read_bytes(), "application/javascript"),
    }


@contextmanager
def page_server(files: Mapping[str, tuple[bytes, str]]) -> Iterator[str]:
    """Serve `files` (path -> (body, type)) on another origin than dddp's: localhost, not 127.0.0.1."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path in files:
                body, kind = files[path]
                status = 200
            else:
                status, body, kind = 404, b"not found\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """Another origin than dddp's: the test page and the sockjs-client bundle, on localhost."""
    with page_server(page_files(CLIENT)) as origin:
        yield origin


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, launched by Playwright with CHROMIUM_FLAGS."""
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def django_beside_playwright_loop() -> Iterator[None]:
    """Playwright's sync API keeps an asyncio loop in this thread, which Django takes for
    async code; the tests' ORM calls still run one at a time, in this thread alone."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module", autouse=True)
def django_beside_playwright() -> Iterator[None]:
    with django_beside_playwright_loop():
        yield


def start_heartbeat_server(
    start_server: Callable[..., ServerProcess], page_origin: str, client_path: str
) -> ServerProcess:
    """DDP pings every 0.3 s of silence; SockJS `h` after 0.1 s, so several come between pings.

    Pages from `page_origin` may connect (DDDP_ALLOWED_ORIGINS); its iframe page loads
    the sockjs-client at `client_path` there (DDDP_SOCKJS_URL).
    """
    return start_server(
        DDDP_HEARTBEAT_INTERVAL="0.3",
        DDDP_HEARTBEAT_TIMEOUT="0.5",
        DDDP_SOCKJS_HEARTBEAT_DELAY="0.1",
        DDDP_SOCKJS_URL=page_origin + client_path,
        DDDP_ALLOWED_ORIGINS=page_origin,
    ).wait_until_listening()


@pytest.fixture(scope="module")
def heartbeat_server(start_server: Callable[..., ServerProcess], page_origin: str) -> ServerProcess:
    """The heartbeat server whose iframe page loads this test's sockjs-client, from the page's origin."""
    return start_heartbeat_server(start_server, page_origin, CLIENT.path)


class BrowserTrace:
    """What the page and its frames did: console lines, errors, requests and answers."""

    def __init__(self, page: Any):
        self.lines: list[str] = []
        self.requests: list[tuple[str, str, str]] = []  # (where from, method, url)
        self.websockets: list[str] = []

        def where_from(request: Any) -> str:
            """The URL of the page's iframe the request came from (or from within), or "page"."""
            try:
                frame = request.frame
                while frame.parent_frame is not None and frame.parent_frame is not page.main_frame:
                    frame = frame.parent_frame
                return "page" if frame is page.main_frame else frame.url
            except Exception:  # noqa: BLE001 - a frame already gone
                return "?"

        def on_request(request: Any) -> None:
            where = where_from(request)
            self.requests.append((where, request.method, request.url))
            self.lines.append(f"request (from {where}) {request.method} {request.url}")

        page.on("request", on_request)
        page.on("response", lambda r: self.lines.append(f"response {r.status} {r.request.method} {r.url}"))
        page.on("requestfailed", lambda r: self.lines.append(f"failed {r.method} {r.url}: {r.failure}"))
        page.on("console", lambda m: self.lines.append(f"console {m.type} {m.location}: {m.text}"))
        page.on("pageerror", lambda error: self.lines.append(f"page error: {error}"))
        page.on("websocket", lambda ws: self.websockets.append(ws.url))

    def session_requests(self, origin: str) -> list[tuple[str, str, str]]:
        """(where from, method, last segment) of each request to a SockJS session URL on `origin`."""
        found = []
        for where, method, url in self.requests:
            match = SESSION_URL.search(url)
            if url.startswith(origin + "/") and match:
                found.append((where, method, match.group(1)))
        return found


def wait_for(page: Any, condition: str, timeout: float = 10.0) -> Any:
    """The value of the page expression `condition` once it is truthy; fails at once if the
    SockJS connection closed (sockjs-client gives up on a forced transport in a second or two)."""
    deadline = time.monotonic() + timeout
    while True:
        value, closed = page.evaluate(f"[{condition}, window.closeEvent]")
        if value:
            return value
        if closed or time.monotonic() >= deadline:
            state = page.evaluate("({events: window.events, transport: window.transport})")
            why = f"the connection closed {closed}" if closed else f"not within {timeout}s"
            raise AssertionError(f"never true in the page: {condition} ({why}); page state: {state}")
        page.wait_for_timeout(50)  # lets Playwright deliver the page's events meanwhile


def transport_params(
    transports: list[Transport], server_bugs: Mapping[str, str], skipped: Mapping[str, str] | None = None
) -> list[Any]:
    """One param per transport: a strict xfail if in `server_bugs`, skipped if in `skipped`."""
    params = []
    for transport in transports:
        marks: list[Any] = []
        if bug := server_bugs.get(transport.name):
            marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=bug))
        if skipped and (why := skipped.get(transport.name)):
            marks.append(pytest.mark.skip(reason=why))
        params.append(pytest.param(transport, id=transport.name, marks=marks))
    return params


@pytest.mark.parametrize("transport", transport_params(TRANSPORTS, SERVER_BUGS))
def test_a_browser_on_another_origin_gets_live_data_and_methods(
    browser: Any, page_origin: str, heartbeat_server: ServerProcess, transport: Transport
) -> None:
    check_live_data_and_methods(browser, page_origin, heartbeat_server, CLIENT, transport)


def check_live_data_and_methods(
    browser: Any, page_origin: str, heartbeat_server: ServerProcess, client: Client, transport: Transport
) -> None:
    """The scenario, in a new page of `page_origin` (serving `page_files(client)`), forced to `transport`.

    The server's iframe page must load `client` from `page_origin` (`start_heartbeat_server`).
    """
    text = f"browser-{uuid.uuid4().hex[:8]}"
    log_start = len(heartbeat_server.log)
    page = browser.new_page()
    trace = BrowserTrace(page)
    try:
        page.goto(page_origin + "/")
        url = heartbeat_server.http_url + "/sockjs"
        page.evaluate(
            "([url, options, opened, text]) => window.start(url, options, opened, text)",
            [url, {client.force: [transport.name]}, client.opened, text],
        )
        wait_for(page, "window.events.some(m => m.msg === 'ready')", timeout=20.0)
        assert page.evaluate("window.transport") == transport.name
        note = Note.objects.create(text=text)
        added = wait_for(page, "window.events.find(m => m.msg === 'added')")
        assert (added["id"], added["fields"]) == (str(note.pk), {"text": text})
        page.wait_for_timeout(1500)  # several heartbeat periods: the page answers pings, stays connected
        page.evaluate("window.ddp.send({msg: 'method', id: 'm', method: 'echo', params: ['hi']})")
        result = wait_for(page, "window.events.find(m => m.msg === 'result')")
        assert result == {"msg": "result", "id": "m", "result": ["hi"]}
        assert page.evaluate("window.pings") >= 2
        if transport.sending is not None:  # dddp sends SockJS `h` frames on the HTTP transports only
            assert page.evaluate("window.heartbeats") >= 2
        assert page.evaluate("window.closeEvent") is None
        assert json.dumps(page.evaluate("window.events")).count('"connected"') == 1  # never reconnected
        assert page.evaluate("window.transport") == transport.name

        # What went over the wire: only this transport's session URLs, from where it runs.
        used = trace.session_requests(heartbeat_server.http_url)
        if transport.sending is None:
            assert used == []
            assert [urlsplit(ws).path.rsplit("/", 1)[-1] for ws in trace.websockets] == ["websocket"]
        else:
            assert trace.websockets == []
            assert {segment for _, _, segment in used} == {transport.receiving, transport.sending}
        iframe_page = heartbeat_server.http_url + "/sockjs/iframe.html"
        if transport.iframe:  # every session request from dddp's iframe page, which loaded our bundle
            assert {where.partition("#")[0] for where, _, _ in used} == {iframe_page}
            bundles = [u for where, _, u in trace.requests if where.startswith(iframe_page)]
            assert page_origin + client.path in bundles, "the iframe did not load the page's bundle"
            iframes = [frame for frame in page.frames if frame.url.startswith(iframe_page)]
            assert [frame.evaluate("SockJS.version") for frame in iframes] == [client.version]
        else:
            assert not any(iframe_page in url for _, _, url in trace.requests)
            if transport.sending is not None:  # received on from the page (jsonp sends from a form's iframe)
                assert {where for where, _, segment in used if segment == transport.receiving} == {"page"}
        assert page.evaluate("SockJS.version") == client.version

        # dddp opened one session, over this transport.
        heartbeat_server.wait_for_log(OPENED.pattern, timeout=5, start=log_start)
        kinds = [m.group(1) for line in heartbeat_server.log[log_start:] if (m := OPENED.search(line))]
        assert kinds == [transport.kind]
    except BaseException:
        print("--- browser:", *trace.lines, sep="\n")
        print("--- server log during the test:", *heartbeat_server.log[log_start:], sep="\n")
        raise
    finally:
        page.close()
