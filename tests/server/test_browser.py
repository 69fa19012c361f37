"""A real browser (Debian's Chromium, driven by Playwright) reaching dddp through SockJS from another origin.

The page is served by this test on its own origin (`localhost:<port>`, while
dddp is `127.0.0.1:<port>`), and loads the npm sockjs-client 1.6.1 bundle
(what current Meteor bundles) from there. For each transport dddp serves so
far, forced in turn: connect, subscribe, receive a change this test process
commits, call a method, and stay connected over several heartbeat periods.
Chromium is installed by tests/run.py when run as root; without it (or
Playwright) the tests are skipped and say so. Nothing downloads a browser.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="/sockjs.min.js"></script></head>
<body><script>
window.events = [];
window.start = function (url, transport, text) {
  const sock = new SockJS(url, null, {transports: [transport]});
  const send = (message) => sock.send(JSON.stringify(message));
  window.ddp = {send: send, sock: sock};
  sock.onopen = () => {
    window.transport = sock.transport;
    send({msg: 'connect', version: '1', support: ['1']});
  };
  sock.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.msg === 'ping') { send({msg: 'pong'}); window.pings = (window.pings || 0) + 1; return; }
    window.events.push(message);
    if (message.msg === 'connected') send({msg: 'sub', id: 's', name: 'NotesByText', params: [text]});
  };
  sock.onclose = (event) => { window.closeCode = event.code; };
};
</script></body></html>
"""


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """Another origin than dddp's: the test page and the sockjs-client bundle, on localhost."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/sockjs.min.js":
                body, kind = SOCKJS_BUNDLE.read_bytes(), "application/javascript"
            else:
                body, kind = PAGE.encode(), "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", autouse=True)
def django_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an asyncio loop in this thread, which Django takes for
    async code; the tests' ORM calls still run one at a time, in this thread alone."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if before is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="module")
def heartbeat_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(
        DDDP_HEARTBEAT_INTERVAL="0.3", DDDP_HEARTBEAT_TIMEOUT="0.5", DDDP_SOCKJS_HEARTBEAT_DELAY="0.3"
    ).wait_until_listening()


def wait_for(page: Any, condition: str, timeout: float = 10.0) -> Any:
    """The value of the page expression `condition` once it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(condition)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never true in the page: {condition}; events: {page.evaluate('window.events')}")


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "jsonp-polling"])
def test_a_browser_on_another_origin_gets_live_data_and_methods(
    browser: Any, page_origin: str, heartbeat_server: ServerProcess, transport: str
) -> None:
    text = f"browser-{uuid.uuid4().hex[:8]}"
    page = browser.new_page()
    try:
        page.goto(page_origin + "/")
        url = heartbeat_server.http_url + "/sockjs"
        page.evaluate(
            "([url, transport, text]) => window.start(url, transport, text)", [url, transport, text]
        )
        wait_for(page, "window.events.some(m => m.msg === 'ready')")
        assert page.evaluate("window.transport") == transport
        note = Note.objects.create(text=text)
        added = wait_for(page, "window.events.find(m => m.msg === 'added')")
        assert (added["id"], added["fields"]) == (str(note.pk), {"text": text})
        time.sleep(1.5)  # several heartbeat periods: the page answers pings and stays connected
        page.evaluate("window.ddp.send({msg: 'method', id: 'm', method: 'echo', params: ['hi']})")
        result = wait_for(page, "window.events.find(m => m.msg === 'result')")
        assert result == {"msg": "result", "id": "m", "result": ["hi"]}
        assert page.evaluate("window.pings") >= 2
        assert page.evaluate("window.closeCode") is None
        assert json.dumps(page.evaluate("window.events")).count('"connected"') == 1  # never reconnected
    finally:
        page.close()
