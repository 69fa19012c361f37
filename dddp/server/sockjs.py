"""SockJS endpoints under /sockjs (section 3): what Meteor browser clients connect to.

The wire format is `dddp.protocol.sockjs`; this module does the HTTP and keeps
the sessions. Served so far: the greeting, `/info` (GET and OPTIONS), the
iframe pages, the raw WebSocket (`/sockjs/websocket`, S-4), and the
transports of Meteor's browser client's list (S-5) but the iframe one: the
SockJS-framed websocket, xhr-polling (`xhr` + `xhr_send`) and jsonp-polling
(`jsonp` + `jsonp_send`). Each is a `dddp.server.transport.Transport`
under an ordinary `Session`, so everything above the framing (limits,
heartbeats, slow-client drop, shutdown) is the raw WebSocket's.

A polling session outlives its requests: messages written while no poll is
open wait (counted against the slow-client limit) for the next poll, and a
session that is not polled for DDDP_SOCKJS_DISCONNECT_DELAY seconds ends; an
idle poll is answered `h` after DDDP_SOCKJS_HEARTBEAT_DELAY seconds.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import gevent
from gevent.event import Event

from dddp.protocol import sockjs
from dddp.protocol.websocket import CLOSE_NORMAL, text_frame
from dddp.server.transport import TransportClosed, TransportUser
from dddp.server.websocket import WebSocketTransport

if TYPE_CHECKING:
    from dddp.server.app import DDPServer, StartSession

logger = logging.getLogger("dddp.server")


StartResponse = Callable[..., Any]
JAVASCRIPT = "application/javascript; charset=UTF-8"
TEXT = "text/plain; charset=UTF-8"


class SockJSWebSocketTransport(WebSocketTransport):
    """A WebSocket carrying SockJS frames: `o` first, messages as `a[...]`, `c[...]` before the close."""

    kind = "sockjs/websocket"
    __slots__ = ()

    def start(self, user: TransportUser, pending: bytes = b"") -> None:
        self._send_now(text_frame(sockjs.OPEN))  # before anything read with the upgrade is answered
        super().start(_Unframing(user, self), pending)

    def write(self, texts: Sequence[str]) -> int:
        if self.closed or self._handshake.sent:
            raise TransportClosed("transport closed")
        data = sockjs_frame_of(texts[0]) if len(texts) == 1 else text_frame(sockjs.messages_frame(texts))
        if not self._send_now(data):
            raise TransportClosed("transport closed")
        return len(self._pending)

    def close(self, code: int, reason: str) -> None:
        if not (self.closed or self._handshake.sent):
            self._send_now(text_frame(sockjs.close_frame(code, reason)))
        super().close(CLOSE_NORMAL, reason)


class _Unframing:
    """Between a SockJS websocket and its session: each text frame is a list of messages (S-11)."""

    __slots__ = ("_transport", "_user")

    def __init__(self, user: TransportUser, transport: SockJSWebSocketTransport):
        self._user = user
        self._transport = transport

    def receive(self, text: str) -> None:
        try:
            texts = sockjs.parse_websocket_payload(text)
        except sockjs.RequestError as error:
            self._user.transport_closing(error.text)
            self._transport.close(*sockjs.CLOSE_BROKEN_FRAMING)
            return
        for message in texts:
            self._user.receive(message)

    def receive_unreadable(self) -> None:
        self._user.receive_unreadable()

    def transport_closing(self, reason: str) -> None:
        self._user.transport_closing(reason)

    def transport_ended(self, reason: str) -> None:
        self._user.transport_ended(reason)


class PollingTransport:
    """One polling session (xhr or jsonp): written messages wait for the client's next poll."""

    def __init__(
        self,
        registry: dict[str, PollingTransport],
        session_id: str,
        client_address: str,
        disconnect_delay: float,
        kind: str = "sockjs/xhr-polling",
    ):
        self.kind = kind
        self._registry = registry
        self._disconnect_delay = disconnect_delay
        self.session_id = session_id
        self.client_address = client_address
        self._user: TransportUser | None = None
        self._outgoing: list[str] = []
        self._outgoing_bytes = 0
        self._wake = Event()  # set when there is something for a poll to answer
        self._taken = Event()  # set when a poll took what was written
        self._polling = False
        self._closed_frame: str | None = None  # once closed, every poll gets it (S-14)
        self._ended = False
        self._timer: gevent.Greenlet | None = None

    # --- the Transport interface -------------------------------------------------

    def start(self, user: TransportUser, pending: bytes = b"") -> None:
        self._user = user
        self._arm_timer()

    def write(self, texts: Sequence[str]) -> int:
        if self._ended or self._closed_frame is not None:
            raise TransportClosed("transport closed")
        self._outgoing.extend(texts)
        self._outgoing_bytes += sum(len(text) for text in texts)
        self._wake.set()
        return self._outgoing_bytes

    @property
    def pending_bytes(self) -> int:
        return self._outgoing_bytes

    def drained(self) -> None:
        """Wait until a poll has taken what was written (or the session is over)."""
        while self._outgoing and not self._ended:
            self._taken.clear()
            self._taken.wait()
        if self._ended:
            raise TransportClosed("transport closed")

    def close(self, code: int, reason: str) -> None:
        """The next poll gets what waits, then every poll gets `c[code,reason]` until the timeout."""
        if self._closed_frame is None and not self._ended:
            self._closed_frame = sockjs.close_frame(code, reason)
            self._wake.set()

    def abort(self) -> None:
        self._ended = True
        self._closed_frame = self._closed_frame or sockjs.close_frame(*sockjs.CLOSE_GO_AWAY)
        self._wake.set()
        self._taken.set()
        self._cancel_timer()
        if self._registry.get(self.session_id) is self:
            del self._registry[self.session_id]

    # --- the HTTP side -----------------------------------------------------------

    def poll(self, heartbeat_delay: float) -> str:
        """Answer one receiving request: messages, the close frame, or `h` after a quiet while."""
        if self._polling:
            return sockjs.close_frame(*sockjs.CLOSE_ANOTHER_CONNECTION)
        self._cancel_timer()
        self._polling = True
        try:
            if not self._outgoing and self._closed_frame is None:
                self._wake.clear()
                self._wake.wait(heartbeat_delay)
            if self._outgoing:
                frame = sockjs.messages_frame(self._outgoing)
                self._outgoing = []
                self._outgoing_bytes = 0
                self._taken.set()
            elif self._closed_frame is not None:
                frame = self._closed_frame
            else:
                frame = sockjs.HEARTBEAT
        finally:
            self._polling = False
            if not self._ended:
                self._arm_timer()
        return frame

    def received(self, texts: list[str]) -> None:
        """Messages from an `xhr_send`, in order."""
        if self._user is None or self._closed_frame is not None:
            return
        for text in texts:
            self._user.receive(text)

    def _arm_timer(self) -> None:
        self._cancel_timer()
        self._timer = gevent.spawn_later(self._disconnect_delay, self._expire)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer is not gevent.getcurrent():
            self._timer.kill(block=False)
        self._timer = None

    def _expire(self) -> None:
        """No poll for the disconnect delay (S-13): the session is over."""
        self._timer = None
        if self._ended:
            return
        self._ended = True
        self._taken.set()
        if self._registry.get(self.session_id) is self:
            del self._registry[self.session_id]
        if self._user is not None:
            reason = "closed" if self._closed_frame else f"no poll for {self._disconnect_delay:g}s"
            self._user.transport_ended(reason)


class SockJSEndpoints:
    """The WSGI side of everything under the prefix."""

    def __init__(
        self,
        server: DDPServer,
        *,
        heartbeat_delay: float,
        disconnect_delay: float,
        sockjs_url: str,
        prefix: str,
        start_session: StartSession | None = None,
        websocket: bool = True,
        cookie_needed: bool = False,
    ):
        self.server = server
        # What each new SockJS session's transport is given to: a DDP session,
        # unless this is one of the conformance test services.
        self.start_session: StartSession = start_session or server.start_session
        self.websocket = websocket  # False: /info says so and the websocket transports are 404
        self.cookie_needed = cookie_needed  # S-22: /info says so and session URLs set JSESSIONID
        self.prefix = prefix  # DDDP_SOCKJS_PREFIX
        self.sockjs_url = sockjs_url  # what the iframe page loads (DDDP_SOCKJS_URL)
        self.polling: dict[str, PollingTransport] = {}
        self.heartbeat_delay = heartbeat_delay
        self.disconnect_delay = disconnect_delay

    def serves(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")[len(self.prefix) :]
        endpoint = sockjs.parse_path(path)
        method = environ.get("REQUEST_METHOD", "GET")
        websocket = environ.get("wsgi.websocket")
        if endpoint is None:
            return _respond(start_response, "404 Not Found", [], "Not found\n")
        if endpoint.kind == "greeting":
            return _respond(start_response, "200 OK", [], sockjs.GREETING)
        if endpoint.kind == "info":
            return self._info(environ, start_response, method)
        if endpoint.kind == "iframe":
            return self._iframe(environ, start_response)
        if endpoint.kind == "raw_websocket" or endpoint.transport == "websocket":
            if not self.websocket:
                return _respond(start_response, "404 Not Found", [], "Not found: websocket disabled\n")
            if method != "GET":
                return _respond(start_response, "405 Method Not Allowed", [("Allow", "GET")], "")
            if websocket is None:
                return _respond(start_response, "400 Bad Request", [], "Not a valid websocket request")
            kind = WebSocketTransport if endpoint.kind == "raw_websocket" else SockJSWebSocketTransport
            self.server.serve_websocket(websocket, environ, kind, self.start_session)
            return []
        if endpoint.transport == "xhr":
            return self._xhr(environ, start_response, method, endpoint.session_id or "")
        if endpoint.transport == "xhr_send":
            return self._xhr_send(environ, start_response, method, endpoint.session_id or "")
        if endpoint.transport == "jsonp":
            return self._jsonp(environ, start_response, method, endpoint.session_id or "")
        if endpoint.transport == "jsonp_send":
            return self._jsonp_send(environ, start_response, method, endpoint.session_id or "")
        return _respond(start_response, "404 Not Found", [], "Not found: transport not served\n")

    def _info(self, environ: dict[str, Any], start_response: StartResponse, method: str) -> Iterable[bytes]:
        cors = sockjs.cors_headers(environ.get("HTTP_ORIGIN"))
        if method == "OPTIONS":
            headers = cors + sockjs.options_headers("OPTIONS, GET", None)
            return _respond(
                start_response, "204 No Content", headers + sockjs.long_cache_headers(time.time())
            )
        body = sockjs.info_body(
            websocket=self.websocket, cookie_needed=self.cookie_needed, entropy=random.getrandbits(32)
        )
        headers = [("Content-Type", "application/json; charset=UTF-8"), *cors, *sockjs.no_cache_headers()]
        return _respond(start_response, "200 OK", headers, body)

    def _iframe(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        page = sockjs.iframe_page(self.sockjs_url)
        tag = sockjs.etag(page)
        headers = [("ETag", tag), *sockjs.long_cache_headers(time.time())]
        if sockjs.etag_matches(environ.get("HTTP_IF_NONE_MATCH"), tag):
            return _respond(start_response, "304 Not Modified", headers)
        headers.append(("Content-Type", "text/html; charset=UTF-8"))
        return _respond(start_response, "200 OK", headers, page)

    def _xhr(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, session_id: str
    ) -> Iterable[bytes]:
        cors, answered = _xhr_preamble(environ, start_response, method)
        if answered is not None:
            return answered
        headers = [("Content-Type", JAVASCRIPT), *cors, *sockjs.no_cache_headers()]
        frame = self._receive(environ, session_id, "sockjs/xhr-polling")
        return _respond(start_response, "200 OK", headers, sockjs.xhr_frame(frame))

    def _jsonp(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, session_id: str
    ) -> Iterable[bytes]:
        """jsonp-polling's receiving request: each frame as a call of the page's callback."""
        if method != "GET":
            return _respond(start_response, "405 Method Not Allowed", [("Allow", "GET")])
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            callback = sockjs.validate_callback((query.get("c") or [""])[0])
        except sockjs.RequestError as error:
            return _respond(
                start_response, "500 Internal Server Error", sockjs.no_cache_headers(), error.text
            )
        frame = self._receive(environ, session_id, "sockjs/jsonp-polling")
        headers = [("Content-Type", JAVASCRIPT), *sockjs.no_cache_headers()]
        return _respond(start_response, "200 OK", headers, sockjs.jsonp_frame(callback, frame))

    def _receive(self, environ: dict[str, Any], session_id: str, kind: str) -> str:
        """The frame a receiving request answers: `o` for a new session, else the next poll's."""
        transport = self.polling.get(session_id)
        if transport is not None:
            return transport.poll(self.heartbeat_delay)
        # A new session; also a client polling a session this process does not know
        # (after a restart): `o` starts it over, and the client reconnects its DDP.
        if not self.server.accepting:
            return sockjs.close_frame(*sockjs.CLOSE_GO_AWAY)
        transport = PollingTransport(
            self.polling, session_id, _client_address(environ), self.disconnect_delay, kind
        )
        self.polling[session_id] = transport
        self.start_session(transport, environ, b"")
        return sockjs.OPEN

    def _xhr_send(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, session_id: str
    ) -> Iterable[bytes]:
        cors, answered = _xhr_preamble(environ, start_response, method)
        if answered is not None:
            return answered
        refused = self._send(environ, session_id, sockjs.parse_send_body)
        if refused is not None:
            return _respond(start_response, refused[0], cors, refused[1])
        return _respond(start_response, "204 No Content", [("Content-Type", TEXT), *cors])

    def _jsonp_send(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, session_id: str
    ) -> Iterable[bytes]:
        if method != "POST":
            return _respond(start_response, "405 Method Not Allowed", [("Allow", "POST")])
        content_type = environ.get("CONTENT_TYPE")
        refused = self._send(
            environ, session_id, lambda body: sockjs.parse_jsonp_send_body(body, content_type)
        )
        headers = sockjs.no_cache_headers()
        if refused is not None:
            return _respond(start_response, refused[0], headers, refused[1])
        return _respond(start_response, "200 OK", [("Content-Type", TEXT), *headers], "ok")

    def _send(
        self, environ: dict[str, Any], session_id: str, parse: Callable[[bytes], list[str]]
    ) -> tuple[str, str] | None:
        """Hand a sending request's messages to its session; (status, text) if refused."""
        transport = self.polling.get(session_id)
        if transport is None:
            return "404 Not Found", "Not found\n"
        limit = self.server.max_message_size
        declared = environ.get("CONTENT_LENGTH")
        if declared and int(declared) > limit:
            return "413 Payload Too Large", "Payload too large."  # from the header, before reading
        # A chunked body (Node's sockjs-client sends one) has no length: read one byte
        # past the limit to know, never more.
        body = environ["wsgi.input"].read(int(declared) if declared else limit + 1)
        if len(body) > limit:
            return "413 Payload Too Large", "Payload too large."
        try:
            texts = parse(body)
        except sockjs.RequestError as error:
            return "500 Internal Server Error", error.text
        transport.received(texts)
        return None


def _xhr_preamble(
    environ: dict[str, Any], start_response: StartResponse, method: str
) -> tuple[list[tuple[str, str]], list[bytes] | None]:
    """An xhr request's CORS headers (S-20), and its answer already if a preflight or not a POST."""
    cors = sockjs.cors_headers(environ.get("HTTP_ORIGIN"))
    if method == "OPTIONS":
        preflight = sockjs.options_headers(
            "OPTIONS, POST", environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        )
        headers = cors + preflight + sockjs.long_cache_headers(time.time())
        return cors, _respond(start_response, "204 No Content", headers)
    if method != "POST":
        return cors, _respond(start_response, "405 Method Not Allowed", [("Allow", "OPTIONS, POST")])
    return cors, None


def _respond(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: str = ""
) -> list[bytes]:
    data = body.encode("utf-8")
    if not any(name.lower() == "content-type" for name, _ in headers) and not status.startswith(
        ("204", "304")
    ):
        headers = [*headers, ("Content-Type", "text/plain; charset=UTF-8")]
    if not status.startswith(("204", "304")):
        headers = [*headers, ("Content-Length", str(len(data)))]
    start_response(status, headers)
    return [data] if data else []


def _client_address(environ: dict[str, Any]) -> str:
    return f"{environ.get('REMOTE_ADDR', '')}:{environ.get('REMOTE_PORT', '')}"


# The same message text goes to every session: its SockJS websocket frame is made once.
_frames: dict[int, tuple[str, bytes]] = {}


def sockjs_frame_of(text: str) -> bytes:
    """The WebSocket text frame of `a["text"]`, made once however many sessions send it."""
    cached = _frames.get(id(text))
    if cached is not None and cached[0] is text:
        return cached[1]
    data = text_frame(sockjs.messages_frame([text]))
    if len(_frames) >= 256:
        _frames.clear()
    _frames[id(text)] = (text, data)
    return data
