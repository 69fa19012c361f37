"""test_browser.py's scenario in Chromium with sockjs-client 0.3.1, the line Meteor 1.x browser apps bundle.

Meteor 1.x bundles sockjs-client 0.3.4, which is not on npm; the closest build
of the 0.3 line there is the one the npm package `shoe` 0.0.15 bundles (in
tests/node): `node_modules/shoe/node_modules/sockjs-client/sockjs.js`, sockjs-client
0.3.1 (`SockJS.version` "0.3.1.7.ga67f.dirty"). The page, on another origin
than dddp's, loads it, and forces each transport in turn the way Meteor 1.x
passed its list: `new SockJS(url, null, {protocols_whitelist: [name]})`; once
open, `sock.protocol` names the transport used (0.3.x has no `sock.transport`).

The transports: those of Meteor 1.x's list (docs/ddp-protocol.md, S-5) that
0.3.1 has, websocket, xhr-polling, iframe-xhr-polling and jsonp-polling, and
0.3.1's others that Chromium can run: xhr-streaming, iframe-eventsource and
iframe-htmlfile (0.3.1 has no plain eventsource transport). Not xdr-polling
(nor xdr-streaming): they are IE's, `XdrStreamingTransport.enabled = function()
{ return !!_window.XDomainRequest; }`, and Chromium has no XDomainRequest.

0.3.1's iframe transports post `[SockJS.version, protocol, trans_url, base_url]`
to dddp's `/sockjs/iframe.html`, which is to load the very same file: the server
is started with DDDP_SOCKJS_URL at this page server's copy of it, and the test
checks the iframe's `SockJS.version`. (An iframe of another 0.3.1 version only
logs "Incompatibile SockJS!", 0.3.1's spelling, and goes on; one loading 1.6.1
never answers 0.3.1's messages, which 1.x does not parse, and the transport
times out: "All transports failed".)

The checks are test_browser.py's (`check_live_data_and_methods`): live data,
a method, heartbeats, and the transport really used, three ways. Skipped, and
saying so, without Playwright, Chromium or the shoe package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.nodejs import NODE_DIR
from tests.server import test_browser as shared
from tests.server.test_browser import Client, Transport
from tests.server_process import ServerProcess

#: sockjs-client 0.3.1, as the npm package shoe 0.0.15 bundles it.
SOCKJS_03 = NODE_DIR / "node_modules" / "shoe" / "node_modules" / "sockjs-client" / "sockjs.js"

#: Forced with `protocols_whitelist`, as Meteor 1.x did; `sock.protocol` names the one open.
CLIENT_03 = Client(
    "0.3.1.7.ga67f.dirty", SOCKJS_03, "/sockjs-0.3.1.js", force="protocols_whitelist", opened="protocol"
)

pytestmark = [
    pytest.mark.skipif(shared.sync_playwright is None, reason="Playwright is not installed"),
    pytest.mark.skipif(not Path(shared.CHROMIUM).exists(), reason="no Chromium at /usr/bin/chromium"),
    pytest.mark.skipif(
        not SOCKJS_03.exists(),
        reason=f"{SOCKJS_03} is missing: npm ci in tests/node (shoe 0.0.15 bundles sockjs-client 0.3.1)",
    ),
    pytest.mark.django_db(transaction=True),
]

#: 0.3.1's transports that Chromium can run, in 0.3.1's order (`_all_protocols`), but xdr-*.
TRANSPORTS = [
    Transport("websocket", "sockjs/websocket", "websocket", None),
    Transport("xhr-streaming", "sockjs/xhr-streaming", "xhr_streaming", "xhr_send"),
    Transport("iframe-eventsource", "sockjs/eventsource", "eventsource", "xhr_send", iframe=True),
    Transport("iframe-htmlfile", "sockjs/htmlfile", "htmlfile", "xhr_send", iframe=True),
    Transport("xhr-polling", "sockjs/xhr-polling", "xhr", "xhr_send"),
    Transport("iframe-xhr-polling", "sockjs/xhr-polling", "xhr", "xhr_send", iframe=True),
    Transport("jsonp-polling", "sockjs/jsonp-polling", "jsonp", "jsonp_send"),
]

#: Transports that fail against dddp today with 0.3.1, and why (strict xfail).
SERVER_BUGS: dict[str, str] = {}  # transport name -> what dddp gets wrong (none known)

#: Transports of the list that 0.3.1 does not run in Chromium, and its reason (none: all are enabled).
NOT_IN_CHROMIUM: dict[str, str] = {}


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """Another origin than dddp's: the test page and sockjs-client 0.3.1, on localhost."""
    with shared.page_server(shared.page_files(CLIENT_03)) as origin:
        yield origin


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with shared.chromium() as launched:
        yield launched


@pytest.fixture(scope="module", autouse=True)
def django_beside_playwright() -> Iterator[None]:
    with shared.django_beside_playwright_loop():
        yield


@pytest.fixture(scope="module")
def heartbeat_server(start_server: Callable[..., ServerProcess], page_origin: str) -> ServerProcess:
    """The heartbeat server whose iframe page loads this page's sockjs-client 0.3.1."""
    return shared.start_heartbeat_server(start_server, page_origin, CLIENT_03.path)


@pytest.mark.parametrize("transport", shared.transport_params(TRANSPORTS, SERVER_BUGS, NOT_IN_CHROMIUM))
def test_a_meteor_1_browser_client_on_another_origin_gets_live_data_and_methods(
    browser: Any, page_origin: str, heartbeat_server: ServerProcess, transport: Transport
) -> None:
    shared.check_live_data_and_methods(browser, page_origin, heartbeat_server, CLIENT_03, transport)
