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

import itertools
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import gevent
from gevent.event import Event

from dddp.protocol import sockjs
from dddp.protocol.websocket import CLOSE_NORMAL, text_frame
from dddp.server.origins import OriginPolicy, Refusal
from dddp.server.transport import SharedBatch, TransportClosed, TransportUser
from dddp.server.websocket import FrameCache, WebSocketTransport

if TYPE_CHECKING:
    from dddp.server.app import DDPServer, StartSession

logger = logging.getLogger("dddp.server")

#: Where the HTTP handler puts the request's socket (`dddp.server.handler`).
SOCKET_KEY = "dddp.socket"
#: Set by `dddp.server.polling` in a poll's environ: sends the whole response at once,
#: without blocking, from wherever the session writes (True if it did or will finish).
RESPOND_KEY = "dddp.respond"
#: What `HTTPTransport.poll` returns when it had its response sent directly.
ANSWERED = ""
#: Set in the environ of requests the access log leaves to DEBUG: a SockJS
#: session's polls and sends are DDP traffic (thousands a second, like a
#: WebSocket's frames, which are not logged either); its session logs its
#: open and its close.
QUIET_KEY = "dddp.quiet"


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
        if isinstance(texts, SharedBatch):
            data = texts.framed("sockjs/websocket", _messages_frame)
        else:
            data = sockjs_frame_of(texts)
        if not self._send_now(data):
            raise TransportClosed("transport closed")
        return len(self._pending)

    def close(self, code: int, reason: str) -> None:
        if not (self.closed or self._handshake.sent):
            self._send_now(text_frame(sockjs.close_frame(code, reason)))
        super().close(CLOSE_NORMAL, reason)

    def _fail(self, code: int, reason: str) -> None:
        if not (self.closed or self._handshake.sent):
            self._send_now(text_frame(sockjs.close_frame(code, reason)))
        super()._fail(CLOSE_NORMAL, reason)


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

    def output_drained(self) -> None:
        self._user.output_drained()


class HTTPTransport:
    """One SockJS session over HTTP requests: polling (xhr, jsonp) or streaming.

    The session outlives its requests. Messages written wait for the client's
    next receiving request: a poll takes what waits and ends; a streaming
    response (xhr_streaming, eventsource, htmlfile) stays open, sending each
    frame as it comes, until it has sent DDDP_SOCKJS_RESPONSE_LIMIT bytes and
    the client opens the next. One receiving request at a time (S-14).

    A receiving request whose client leaves (its socket reads end-of-file
    while it waits, or writing its response fails) may have lost what it
    carried: the session ends at once, as sockjs-node's does, and until the
    disconnect delay every request for it is answered c[1002,"Connection
    interrupted"], so the client starts a new session (Meteor then subscribes
    again and re-sends unanswered methods) instead of missing messages.
    """

    def __init__(
        self,
        registry: HTTPSessions,
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
        self._wake = Event()  # set when a waiting receiving request has something to do
        self._taken = Event()  # set when a receiving request took what was written
        self._receiving = False
        self._receiver: ClientWatch | None = None
        # While a poll that can be answered directly waits: what sends its response
        # (True if it did, or will finish it); then whether it was.
        self._answer: Callable[[str], bool] | None = None
        self._answered = False  # the receiving request's, while there is one
        self._closed_frame: str | None = None  # once closed, every request gets it (S-14)
        self._ended = False  # nothing more is written; the session is told, or aborted it
        self._timer: Any = None  # the event loop's timer of the disconnect delay
        self._resumed: Event | None = None  # while reading is paused: set when it resumes
        self._send_waits = False  # a sending request waits for the pause to end

    # --- the Transport interface -------------------------------------------------

    def start(self, user: TransportUser, pending: bytes = b"") -> None:
        self._user = user
        self._arm_timer()

    def write(self, texts: Sequence[str]) -> int:
        if self._ended or self._closed_frame is not None:
            raise TransportClosed("transport closed")
        if self._answer is not None and not self._outgoing:
            # A poll waits and can be answered right here: the fan-out of one
            # change to many polling clients is then one loop of sends, not a
            # greenlet switch and a trip up the WSGI stack per client.
            answer, self._answer = self._answer, None
            if answer(sockjs.messages_frame(texts)):
                self._answered = True
                self._wake.set()
                return 0
        self._outgoing.extend(texts)
        self._outgoing_bytes += sum(map(len, texts))
        self._wake.set()
        return self._outgoing_bytes

    @property
    def pending_bytes(self) -> int:
        return self._outgoing_bytes

    def drained(self) -> None:
        """Wait until a receiving request has taken what was written (or the session is over)."""
        while self._outgoing and not self._ended:
            self._taken.clear()
            self._taken.wait()
        if self._ended:
            raise TransportClosed("transport closed")

    def close(self, code: int, reason: str) -> None:
        """The next request gets what waits, then every request gets `c[code,reason]` until the timeout."""
        if self._closed_frame is None and not self._ended:
            self._closed_frame = sockjs.close_frame(code, reason)
            self._wake.set()

    def pause_reading(self) -> None:
        """Sending requests wait for their answer, so the client sends no next one, until resumed."""
        if self._resumed is None:
            self._resumed = Event()

    def resume_reading(self) -> None:
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            resumed.set()

    def abort(self) -> None:
        """Over at once, without telling the session; requests get the close frame until the timeout."""
        if not self._ended:
            self._user = None
            self._end(self._closed_frame or sockjs.close_frame(*sockjs.CLOSE_GO_AWAY))
            if not self._receiving:
                self._arm_timer()

    # --- the HTTP side -----------------------------------------------------------

    def poll(
        self,
        heartbeat_delay: float,
        client: ClientWatch | None,
        answer: Callable[[str], bool] | None = None,
    ) -> str | None:
        """The frame one polling request answers (messages, the close frame, or `h` after a
        quiet while); None if its client left while it waited; ANSWERED if `answer` (given
        a frame, it sends the whole response without blocking) already sent it."""
        if self._receiving:
            return self._refusal()
        self._receiving, self._receiver = True, client
        self._answer, self._answered = answer, False
        self._cancel_timer()
        try:
            return self._next_frame(heartbeat_delay, client)
        finally:
            if client is not None:
                client.stop()
            self._receiving, self._receiver = False, None
            self._answer, self._answered = None, False
            self._arm_timer()

    def stream(
        self,
        opening: bool,
        heartbeat_delay: float,
        response_limit: int,
        client: ClientWatch | None,
        encode: Callable[[str], bytes],
    ) -> Iterator[bytes]:
        """A streaming response's frames, each encoded, until `response_limit` bytes, the close
        frame, or the client leaving (`o` first if `opening`).

        Runs as the WSGI body, so each frame is out (handed to the socket) when
        the next is asked for; a write that fails closes this generator at its
        `yield`, and the session is interrupted.
        """
        if self._receiving:
            yield encode(self._refusal())
            return
        self._receiving, self._receiver = True, client
        self._cancel_timer()
        sent = 0
        try:
            frame: str | None = sockjs.OPEN if opening else None
            while True:
                if frame is None:
                    frame = self._next_frame(heartbeat_delay, client)
                    if frame is None:
                        return
                data = encode(frame)
                try:
                    yield data
                except GeneratorExit:
                    self.interrupted()
                    raise
                sent += len(data)
                if frame.startswith("c") or sent >= response_limit:
                    return
                frame = None
        finally:
            if client is not None:
                client.stop()
            self._receiving, self._receiver = False, None
            self._arm_timer()

    def _refusal(self) -> str:
        """A second receiving request's frame: 2010, unless the first one's client has left
        (its end-of-file not yet handled, as when a client aborts and at once re-polls)."""
        if self._receiver is not None and self._receiver.left():
            self.interrupted()
            return sockjs.close_frame(*sockjs.CLOSE_INTERRUPTED)
        return sockjs.close_frame(*sockjs.CLOSE_ANOTHER_CONNECTION)

    @property
    def send_waits(self) -> bool:
        """A sending request waits for reading to resume: a client sends one at a time."""
        return self._send_waits

    def received(self, texts: list[str]) -> None:
        """Messages from a sending request, in order; returns when the session reads again.

        While reading is paused (too many requests unanswered), the sending
        request's answer waits: the client sends its next one only then.
        """
        for text in texts:
            # Each may end the session (a client too slow for its replies is dropped).
            if self._user is None or self._closed_frame is not None:
                return
            self._user.receive(text)
        resumed = self._resumed
        if resumed is not None:
            self._send_waits = True
            try:
                resumed.wait()
            finally:
                self._send_waits = False

    def interrupted(self) -> None:
        """A receiving request's client left, perhaps with messages: the session is over."""
        if self._ended:
            return
        user = self._user
        self._user = None
        self._end(sockjs.close_frame(*sockjs.CLOSE_INTERRUPTED))
        if not self._receiving:
            self._arm_timer()
        if user is not None:
            user.transport_ended("connection interrupted")

    def _next_frame(self, heartbeat_delay: float, client: ClientWatch | None) -> str | None:
        deadline = time.monotonic() + heartbeat_delay
        if client is not None:
            client.start(self._wake)
        while not self._answered and not self._outgoing and self._closed_frame is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return sockjs.HEARTBEAT
            self._wake.clear()
            self._wake.wait(remaining)
            if client is not None and client.left():
                self.interrupted()
                return None
        if self._answered:
            return ANSWERED  # what was written after the answer waits for the next poll
        if self._outgoing and not self._ended:
            frame = sockjs.messages_frame(self._outgoing)
            self._outgoing = []
            self._outgoing_bytes = 0
            self._taken.set()
            if self._user is not None:
                self._user.output_drained()
            return frame
        return self._closed_frame

    def _end(self, closed_frame: str) -> None:
        """Nothing more is written; requests get `closed_frame` until the timer forgets the session."""
        self._ended = True
        self._closed_frame = closed_frame
        self._outgoing = []
        self._outgoing_bytes = 0
        self._wake.set()
        self._taken.set()
        self.resume_reading()  # a waiting send is answered

    def _arm_timer(self) -> None:
        # An event-loop timer, not a greenlet: every poll re-arms it, and a
        # greenlet's spawn and kill cost seven times as much.
        self._cancel_timer()
        timer = self._timer = gevent.get_hub().loop.timer(self._disconnect_delay)
        timer.start(gevent.spawn, self._expire, timer)  # the expiry itself runs in a greenlet

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None

    def _expire(self, timer: Any) -> None:
        """No receiving request for the disconnect delay (S-13): the session is forgotten."""
        if timer is not self._timer:
            return  # a request came between the timer's firing and now: it re-armed it
        self._cancel_timer()
        self._registry.remove(self)
        if self._ended:
            return
        user = self._user
        self._user = None
        reason = "closed" if self._closed_frame else f"no poll for {self._disconnect_delay:g}s"
        self._end(self._closed_frame or sockjs.close_frame(*sockjs.CLOSE_GO_AWAY))
        if user is not None:
            user.transport_ended(reason)


class HTTPSessions:
    """The HTTP transports' sessions by id, and how many each client address holds."""

    def __init__(self, max_per_address: int):
        self.max_per_address = max_per_address  # DDDP_SOCKJS_MAX_SESSIONS_PER_ADDRESS; 0: no limit
        self._by_id: dict[str, HTTPTransport] = {}
        self._per_address: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, session_id: str) -> HTTPTransport | None:
        return self._by_id.get(session_id)

    def full_for(self, address: str) -> bool:
        return 0 < self.max_per_address <= self._per_address[address]

    def add(self, transport: HTTPTransport) -> None:
        self._by_id[transport.session_id] = transport
        self._per_address[_host(transport.client_address)] += 1

    def remove(self, transport: HTTPTransport) -> None:
        if self._by_id.get(transport.session_id) is transport:
            del self._by_id[transport.session_id]
            address = _host(transport.client_address)
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]


class ClientWatch:
    """Notices the client of a waiting request leaving: its socket reads end-of-file.

    A long poll's client that gives up (a closed tab, an aborted request)
    otherwise goes unnoticed until the response is written to nobody.
    """

    __slots__ = ("_readable", "_socket", "_wake", "_watcher")

    def __init__(self, sock: Any):
        self._socket = sock
        self._watcher: Any = None
        self._wake: Event | None = None
        self._readable = False  # the watcher fired since the last look

    def start(self, wake: Event) -> None:
        if self._watcher is None and self._socket is not None:
            self._wake = wake
            self._watcher = gevent.get_hub().loop.io(self._socket.fileno(), 1)
            self._watcher.start(self._on_readable)

    def _on_readable(self) -> None:
        self._readable = True
        assert self._wake is not None
        self._wake.set()

    def left(self) -> bool:
        # Most wakes are messages to send: only a readable socket is worth a look.
        if self._watcher is None or not self._readable:
            return False
        self._readable = False
        timeout = self._socket.gettimeout()
        self._socket.settimeout(0)  # a peek that never waits
        try:
            data = self._socket.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            self._socket.settimeout(timeout)
        if data:
            self.stop()  # the client sent more (a pipelined request): it is still there
            return False
        return True

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None


def websocket_kind(endpoint: sockjs.Endpoint) -> type[WebSocketTransport] | None:
    """The transport of a WebSocket at a SockJS endpoint: raw DDP at `<prefix>/websocket`,
    SockJS framing at a session's `websocket`; None for any other endpoint."""
    if endpoint.kind == "raw_websocket":
        return WebSocketTransport
    if endpoint.transport == "websocket":
        return SockJSWebSocketTransport
    return None


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
        response_limit: int,
        max_sessions_per_address: int,
        origins: OriginPolicy | None,
        start_session: StartSession | None = None,
        websocket: bool = True,
        cookie_needed: bool = False,
    ):
        self.server = server
        self.prefix = prefix  # DDDP_SOCKJS_PREFIX
        self.sockjs_url = sockjs_url  # what the iframe page loads (DDDP_SOCKJS_URL)
        self.heartbeat_delay = heartbeat_delay
        self.disconnect_delay = disconnect_delay
        self.response_limit = response_limit  # DDDP_SOCKJS_RESPONSE_LIMIT
        self.sessions = HTTPSessions(max_sessions_per_address)
        self.origins = origins  # None: any host and origin (the conformance test services)
        # What each new SockJS session's transport is given to: a DDP session,
        # unless this is one of the conformance test services.
        self.start_session: StartSession = start_session or server.start_session
        self.websocket = websocket  # False: /info says so and the websocket transports are 404
        self.cookie_needed = cookie_needed  # S-22: /info says so and session URLs set JSESSIONID
        self._refusals_logged = 0.0

    def serves(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def websocket_at(self, path: str) -> type[WebSocketTransport] | None:
        """The transport of a WebSocket upgraded at `path` (one it `serves`), or None: no
        WebSocket is served there."""
        endpoint = sockjs.parse_path(path[len(self.prefix) :])
        if endpoint is None or not self.websocket:
            return None
        return websocket_kind(endpoint)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")[len(self.prefix) :]
        endpoint = sockjs.parse_path(path)
        method = environ.get("REQUEST_METHOD", "GET")
        websocket = environ.get("wsgi.websocket")
        if endpoint is None:
            return _respond(start_response, "404 Not Found", [], "Not found\n")
        if self.origins is not None and websocket is None and not self._polls_own_session(endpoint):
            try:
                self.origins.check(environ)
            except Refusal as refusal:
                self.server.log_refusal(environ, refusal)
                return _respond(start_response, refusal.status, [], refusal.text)
        if endpoint.kind == "greeting":
            return _respond(start_response, "200 OK", [], sockjs.GREETING)
        if endpoint.kind == "info":
            return self._info(environ, start_response, method)
        if endpoint.kind == "iframe":
            return self._iframe(environ, start_response)
        kind = websocket_kind(endpoint)
        if kind is not None:
            if not self.websocket:
                return _respond(start_response, "404 Not Found", [], "Not found: websocket disabled\n")
            if method != "GET":
                return _respond(start_response, "405 Method Not Allowed", [("Allow", "GET")], "")
            if websocket is None:
                return _respond(start_response, "400 Bad Request", [], "Not a valid websocket request")
            self.server.serve_websocket(websocket, environ, kind, self.start_session)
            return []
        session_id = endpoint.session_id or ""
        environ[QUIET_KEY] = True
        cookie = self._cookie(environ)
        if endpoint.transport in ("xhr", "xhr_streaming"):
            cors, answered = _xhr_preamble(environ, start_response, method, cookie)
            if answered is not None:
                return answered
            headers = [("Content-Type", JAVASCRIPT), *cors, *cookie, *sockjs.no_cache_headers()]
            if endpoint.transport == "xhr":
                return self._poll(environ, start_response, headers, session_id, "xhr", sockjs.xhr_frame)
            prelude = sockjs.XHR_STREAMING_PRELUDE
            return self._stream(
                environ, start_response, headers, session_id, "xhr-streaming", prelude, sockjs.xhr_frame
            )
        if endpoint.transport == "xhr_send":
            return self._xhr_send(environ, start_response, method, session_id, cookie)
        if endpoint.transport in ("jsonp", "htmlfile", "eventsource"):
            if method != "GET":
                return _respond(start_response, "405 Method Not Allowed", [("Allow", "GET")])
            return self._get_receiver(environ, start_response, endpoint.transport, session_id, cookie)
        if endpoint.transport == "jsonp_send":
            return self._jsonp_send(environ, start_response, method, session_id, cookie)
        return _respond(start_response, "404 Not Found", [], "Not found: transport not served\n")

    def _polls_own_session(self, endpoint: sockjs.Endpoint) -> bool:
        """A receiving request of a session that exists: the request that made it was checked.

        (Its host and origin are not checked again: polls are most of the traffic. Sends
        are: whoever holds the session's id may send, but only from an accepted page.)
        """
        return (
            endpoint.session_id is not None
            and endpoint.transport not in ("xhr_send", "jsonp_send")
            and self.sessions.get(endpoint.session_id) is not None
        )

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

    def _cookie(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """S-22: with cookie_needed, session URLs set JSESSIONID (the client's, or "dummy")."""
        if not self.cookie_needed:
            return []
        return [("Set-Cookie", sockjs.jsessionid_cookie(environ.get("HTTP_COOKIE")))]

    def _get_receiver(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        transport: str,
        session_id: str,
        cookie: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """jsonp (polling), htmlfile and eventsource (streaming): GETs (S-21).

        An EventSource of another origin needs CORS, as sockjs-node has sent it
        since 0.3.10; jsonp and htmlfile are scripts and pages, which need none.
        """
        no_cache = [*cookie, *sockjs.no_cache_headers()]
        if transport == "eventsource":
            cors = sockjs.cors_headers(environ.get("HTTP_ORIGIN"))
            headers = [("Content-Type", "text/event-stream"), *cors, *no_cache]
            return self._stream(
                environ,
                start_response,
                headers,
                session_id,
                "eventsource",
                sockjs.EVENTSOURCE_PRELUDE,
                sockjs.eventsource_frame,
            )
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            callback = sockjs.validate_callback((query.get("c") or [""])[0])
        except sockjs.RequestError as error:
            return _respond(start_response, "500 Internal Server Error", no_cache, error.text)
        if transport == "jsonp":
            headers = [("Content-Type", JAVASCRIPT), *no_cache]
            return self._poll(
                environ,
                start_response,
                headers,
                session_id,
                "jsonp",
                lambda frame: sockjs.jsonp_frame(callback, frame),
            )
        headers = [("Content-Type", "text/html; charset=UTF-8"), *no_cache]
        return self._stream(
            environ,
            start_response,
            headers,
            session_id,
            "htmlfile",
            sockjs.htmlfile_prelude(callback),
            sockjs.htmlfile_frame,
        )

    def _session(
        self, environ: dict[str, Any], session_id: str, kind: str
    ) -> tuple[HTTPTransport | None, str]:
        """The session a receiving request is for, and "" or the frame that answers it instead.

        An unknown id is a new session; also a client polling a session this
        process does not know (after a restart): `o` starts it over, and the
        client reconnects its DDP.
        """
        transport = self.sessions.get(session_id)
        if transport is not None:
            return transport, ""
        if not self.server.accepting:
            return None, sockjs.close_frame(*sockjs.CLOSE_GO_AWAY)
        address = _client_address(environ)
        if self.sessions.full_for(_host(address)):
            self._log_refusal(address)
            return None, sockjs.close_frame(*sockjs.CLOSE_TOO_MANY_SESSIONS)
        transport = HTTPTransport(self.sessions, session_id, address, self.disconnect_delay, kind)
        self.sessions.add(transport)
        self.start_session(transport, environ, b"")
        return transport, sockjs.OPEN

    def _poll(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        headers: list[tuple[str, str]],
        session_id: str,
        transport_name: str,
        encode: Callable[[str], str],
    ) -> Iterable[bytes]:
        """A polling receiving request (xhr, jsonp): one frame, with a Content-Length."""
        transport, frame = self._session(environ, session_id, f"sockjs/{transport_name}-polling")
        if not frame and transport is not None:
            respond = environ.get(RESPOND_KEY)
            answer = None
            if respond is not None:

                def answer(frame: str) -> bool:
                    data = encode(frame).encode("utf-8")
                    return respond("200 OK", [*headers, ("Content-Length", str(len(data)))], data)

            polled = transport.poll(self.heartbeat_delay, ClientWatch(environ.get(SOCKET_KEY)), answer)
            if polled is None:
                return []  # the client left; nobody to answer
            if polled is ANSWERED:
                return _delivered(b"", transport)  # its end tells whether the response got out
            frame = polled
        data = encode(frame).encode("utf-8")
        start_response("200 OK", [*headers, ("Content-Length", str(len(data)))])
        return _delivered(data, transport) if transport is not None else [data]

    def _stream(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        headers: list[tuple[str, str]],
        session_id: str,
        transport_name: str,
        prelude: str,
        encode: Callable[[str], str],
    ) -> Iterable[bytes]:
        """A streaming receiving request: chunked on HTTP/1.1, until the connection closes on 1.0."""
        transport, frame = self._session(environ, session_id, f"sockjs/{transport_name}")
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.0":
            # No chunks and no length on 1.0: only the close ends the body, even
            # when the client asked for Keep-Alive (gevent would keep it).
            headers = [*headers, ("Connection", "close")]
        # nginx buffers a proxied response unless told otherwise: a stream must not wait.
        start_response("200 OK", [*headers, ("X-Accel-Buffering", "no")])
        head = prelude.encode("utf-8")
        if transport is None:
            return [head, encode(frame).encode("utf-8")]
        frames = transport.stream(
            frame == sockjs.OPEN,
            self.heartbeat_delay,
            self.response_limit,
            ClientWatch(environ.get(SOCKET_KEY)),
            lambda text: encode(text).encode("utf-8"),
        )
        return itertools.chain([head], frames)

    def _xhr_send(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        method: str,
        session_id: str,
        cookie: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        cors, answered = _xhr_preamble(environ, start_response, method, cookie)
        if answered is not None:
            return answered
        refused = self._send(environ, session_id, sockjs.parse_send_body)
        if refused is not None:
            return _respond(start_response, refused[0], [*cors, *cookie], refused[1])
        headers = [("Content-Type", TEXT), *cors, *cookie, *sockjs.no_cache_headers()]
        return _respond(start_response, "204 No Content", headers)

    def _jsonp_send(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        method: str,
        session_id: str,
        cookie: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        if method != "POST":
            return _respond(start_response, "405 Method Not Allowed", [("Allow", "POST")])
        content_type = environ.get("CONTENT_TYPE")
        refused = self._send(
            environ, session_id, lambda body: sockjs.parse_jsonp_send_body(body, content_type)
        )
        headers = [*cookie, *sockjs.no_cache_headers()]
        if refused is not None:
            return _respond(start_response, refused[0], headers, refused[1])
        return _respond(start_response, "200 OK", [("Content-Type", TEXT), *headers], "ok")

    def _send(
        self, environ: dict[str, Any], session_id: str, parse: Callable[[bytes], list[str]]
    ) -> tuple[str, str] | None:
        """Hand a sending request's messages to its session; (status, text) if refused."""
        transport = self.sessions.get(session_id)
        if transport is None:
            return "404 Not Found", "Not found\n"
        if transport.send_waits:
            return "429 Too Many Requests", "Another send to this session waits for its answer\n"
        limit = self.server.max_message_size
        declared = environ.get("CONTENT_LENGTH")
        if declared and int(declared) > limit:
            return "413 Payload Too Large", "Payload too large."  # from the header, before reading
        # A chunked body (Node's sockjs-client sends one) has no length: read one byte
        # past the limit to know, never more.
        try:
            body = environ["wsgi.input"].read(int(declared) if declared else limit + 1)
        except OSError:  # TimeoutError: no byte of it within DDDP_REQUEST_BODY_TIMEOUT
            return "408 Request Timeout", "The request's body stopped coming.\n"
        if len(body) > limit:
            return "413 Payload Too Large", "Payload too large."
        try:
            texts = parse(body)
        except sockjs.RequestError as error:
            return "500 Internal Server Error", error.text
        transport.received(texts)
        return None

    def _log_refusal(self, address: str) -> None:
        now = time.monotonic()
        if now - self._refusals_logged >= 10:  # one line per 10 s however many are refused
            self._refusals_logged = now
            logger.warning(
                "refused a SockJS session from %s: it holds %d (DDDP_SOCKJS_MAX_SESSIONS_PER_ADDRESS)",
                address,
                self.sessions.max_per_address,
            )


def _delivered(data: bytes, transport: HTTPTransport) -> Iterator[bytes]:
    """A poll's body: if writing it fails (the client left), the session is interrupted."""
    try:
        yield data
    except GeneratorExit:
        transport.interrupted()
        raise


def _xhr_preamble(
    environ: dict[str, Any], start_response: StartResponse, method: str, cookie: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[bytes] | None]:
    """An xhr request's CORS headers (S-20), and its answer already if a preflight or not a POST."""
    cors = sockjs.cors_headers(environ.get("HTTP_ORIGIN"))
    if method == "OPTIONS":
        preflight = sockjs.options_headers(
            "OPTIONS, POST", environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        )
        headers = cors + cookie + preflight + sockjs.long_cache_headers(time.time())
        return cors, _respond(start_response, "204 No Content", headers)
    if method != "POST":
        return cors, _respond(start_response, "405 Method Not Allowed", [("Allow", "OPTIONS, POST")])
    return cors, None


def _respond(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: str = ""
) -> list[bytes]:
    data = body.encode("utf-8")
    if data and not any(name.lower() == "content-type" for name, _ in headers):
        headers = [*headers, ("Content-Type", "text/plain; charset=UTF-8")]
    if not status.startswith(("204", "304")):
        headers = [*headers, ("Content-Length", str(len(data)))]
    start_response(status, headers)
    return [data] if data else []


def _client_address(environ: dict[str, Any]) -> str:
    return f"{environ.get('REMOTE_ADDR', '')}:{environ.get('REMOTE_PORT', '')}"


def _host(client_address: str) -> str:
    """The address of "address:port" (IPv6 addresses hold colons too)."""
    return client_address.rpartition(":")[0]


# The same message texts go to every session (one change, one batch of changes):
# their SockJS websocket frame is made once, keyed by the texts' identities.
_frames = FrameCache()


def sockjs_frame_of(texts: Sequence[str]) -> bytes:
    """The WebSocket text frame of `a[...texts]`, made once however many sessions send it."""
    key = tuple(map(id, texts))
    cached = _frames.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], texts, strict=True)):
        return cached[1]
    data = _messages_frame(texts)
    _frames.put(key, tuple(texts), sum(map(len, texts)), data)
    return data


def _messages_frame(texts: Sequence[str]) -> bytes:
    return text_frame(sockjs.messages_frame(texts))
