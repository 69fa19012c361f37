"""The WSGI application the server runs: DDP at /websocket, Django everywhere else."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.lock
from gevent.event import Event
from geventwebsocket.websocket import WebSocket

from dddp.api import Registry
from dddp.log_throttle import LogThrottle, left_out
from dddp.protocol.websocket import CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, close_frame
from dddp.rate_limits import RateLimiter
from dddp.server.heap import start_heap_trimmer
from dddp.server.hub import Hub
from dddp.server.origins import OriginPolicy, Refusal
from dddp.server.session import Session
from dddp.server.sockjs import SockJSEndpoints
from dddp.server.sockjs_services import SockJSTestServices
from dddp.server.transport import Transport
from dddp.server.websocket import WebSocketTransport
from dddp.server.workers import STOP_GRACE, WorkerPool

logger = logging.getLogger("dddp.server")

#: Sessions the heartbeat ticker checks before it lets the rest of the server run.
TICK_SLICE = 500
_refusals = LogThrottle()  # refused hosts and origins: one line per interval

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: What begins using a new transport: (transport, the request's environ, bytes read past it).
StartSession = Callable[[Transport, dict[str, Any], bytes], None]

#: Raw WebSocket DDP endpoints, as Meteor's server has them (S-4).
WEBSOCKET_PATHS = ("/websocket", "/websocket/")

#: Seconds a shutdown gives clients to answer its close frames (one round trip).
CLOSE_GRACE = 0.5
#: Seconds the whole stop may last past DDDP_SHUTDOWN_TIMEOUT: CLOSE_GRACE, then
#: the method workers' and the hub's STOP_GRACE (0.2 s in all), then a margin for
#: the work itself. That work (a close frame and a log line per connection) grows
#: with the number of connections: with many thousands it needs more than the margin.
STOP_OVERRUN = 1.0
# How often a shutdown checks whether the last request has been answered.
_IDLE_POLL = 0.02


class DDPServer:
    """Routes requests, keeps the live sessions and their heartbeats, shuts down cleanly."""

    def __init__(
        self,
        registry: Registry,
        *,
        django_app: WSGIApp | None,
        max_message_size: int,
        max_send_queue_bytes: int,
        max_subscriptions: int,
        max_pending_requests: int,
        max_observers_per_connection: int,
        max_observers: int,
        max_params_size: int,
        allowed_origins: list[str],
        heartbeat_interval: float,
        heartbeat_timeout: float,
        connect_timeout: float,
        method_workers: int,
        connect_listener: Callable[[], Any],
        fence_timeout: float = 10.0,
        sockjs_heartbeat_delay: float,
        sockjs_disconnect_delay: float,
        sockjs_url: str,
        sockjs_prefix: str,
        sockjs_response_limit: int,
        sockjs_max_sessions_per_address: int,
        sockjs_test_services: bool = False,
        rate_limits: RateLimiter | None = None,
        cpu_heavy_calls: int = 1,
    ):
        self.registry = registry
        self.django_app = django_app
        self.max_message_size = max_message_size
        self.max_send_queue_bytes = max_send_queue_bytes
        self.max_subscriptions = max_subscriptions
        self.max_pending_requests = max_pending_requests
        self.max_observers_per_connection = max_observers_per_connection
        self.max_params_size = max_params_size
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.connect_timeout = connect_timeout  # DDDP_CONNECT_TIMEOUT
        self.fence_timeout = fence_timeout
        self.origins = OriginPolicy(allowed_origins)
        self.rate_limits = rate_limits or RateLimiter()  # DDDP_RATE_LIMITS
        # Methods that mostly wait for a hashing thread (logins), run at once: one per thread.
        self.cpu_heavy_calls = gevent.lock.BoundedSemaphore(cpu_heavy_calls)
        self.workers = WorkerPool(method_workers)
        self.hub = Hub(registry, connect_listener, max_observers)
        self.hub.tokens_revoked = self.close_sessions_logged_in_with
        self.sessions: set[Session] = set()
        # Each session with when it opened, in that order, until its connect timeout is due.
        self._connecting: deque[tuple[float, Session]] = deque()
        self.accepting = True
        self._no_sessions = Event()  # set by `forget` when the last session is gone
        self._ticker = gevent.spawn(self._tick_heartbeats)
        self._heap_trimmer = start_heap_trimmer()
        self._token_sweeper = start_token_sweeper(self.workers)
        self.sockjs = SockJSEndpoints(
            self,
            heartbeat_delay=sockjs_heartbeat_delay,
            disconnect_delay=sockjs_disconnect_delay,
            sockjs_url=sockjs_url,
            prefix=sockjs_prefix,
            response_limit=sockjs_response_limit,
            max_sessions_per_address=sockjs_max_sessions_per_address,
            origins=self.origins,
        )
        # The sockjs-protocol suite's services (--sockjs-test-services): a conformance tool.
        self.test_services: SockJSTestServices | None = None
        if sockjs_test_services:
            self.test_services = SockJSTestServices(
                self,
                heartbeat_delay=sockjs_heartbeat_delay,
                disconnect_delay=sockjs_disconnect_delay,
                sockjs_url=sockjs_url,
            )
            logger.warning(
                "SockJS conformance test services mounted at %s (--sockjs-test-services: "
                "for the sockjs-protocol suite, not for production)",
                ", ".join(self.test_services.prefixes),
            )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        websocket = environ.get("wsgi.websocket")
        if path in WEBSOCKET_PATHS:
            if websocket is None:
                return _plain(start_response, "400 Bad Request", "Not a valid websocket request\n")
            self.serve_websocket(websocket, environ)
            return []
        if self.sockjs.serves(path):
            return self.sockjs(environ, start_response)
        if self.test_services is not None:
            service = self.test_services.serving(path)
            if service is not None:
                return service(environ, start_response)
        if websocket is not None:
            # gevent-websocket upgrades any path; DDP lives only at its endpoints.
            _refuse(websocket, CLOSE_POLICY_VIOLATION, f"no WebSocket endpoint at {path}")
            return []
        if self.django_app is None:
            return _plain(start_response, "404 Not Found", "Not found: this server serves only DDP\n")
        return self.django_app(environ, start_response)

    def websocket_endpoint(self, path: str) -> tuple[type[WebSocketTransport], StartSession] | None:
        """The transport and the session starter of a WebSocket upgraded at `path`, for the
        short way (`dddp.server.upgrades`); None where pywsgi's way must answer: no
        WebSocket is served there, a conformance test service's, or the server is stopping."""
        if not self.accepting:
            return None
        if path in WEBSOCKET_PATHS:
            return WebSocketTransport, self.start_session
        if self.test_services is not None and self.test_services.serving(path):
            return None
        if self.sockjs.serves(path):
            kind = self.sockjs.websocket_at(path)
            if kind is not None:
                return kind, self.sockjs.start_session
        return None

    def upgrade_refusal(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], str] | None:
        """(status, headers, text) refusing a WebSocket upgrade for its Host or Origin, or None.

        Called before the 101, so a refused page never gets a WebSocket.
        """
        if self.test_services is not None and self.test_services.serving(environ.get("PATH_INFO", "")):
            return None  # the conformance suite's services answer any origin
        try:
            self.origins.check(environ)
        except Refusal as refusal:
            self.log_refusal(environ, refusal)
            return refusal.status, [], refusal.text
        return None

    def log_refusal(self, environ: dict[str, Any], refusal: Refusal) -> None:
        count = _refusals.allow(refusal.status)
        if count is not None:
            logger.warning(
                "refused a connection from %s: %s%s",
                environ.get("REMOTE_ADDR", ""),
                refusal.text.strip(),
                left_out(count),
            )

    def serve_websocket(
        self,
        websocket: Any,
        environ: dict[str, Any],
        kind: type[WebSocketTransport] = WebSocketTransport,
        start: StartSession | None = None,
    ) -> None:
        """Take the upgraded socket from the HTTP handler, whose greenlet then ends.

        `start` (default `start_session`) is given the transport: something other
        than a DDP session may use it (the SockJS test services).
        """
        if not self.accepting:
            _refuse(websocket, CLOSE_GOING_AWAY, "server shutting down")
            return
        handler = websocket.handler
        pending = _buffered_input(handler)
        fd = handler.socket.detach()
        # Tell the handler and gevent-websocket the socket is no longer theirs:
        # no close frame, no next HTTP request read from it, no close.
        websocket.closed = True
        websocket.__class__ = _TakenOver
        handler.socket = None
        handler.close_connection = True
        address = f"{environ.get('REMOTE_ADDR', '')}:{environ.get('REMOTE_PORT', '')}"
        (start or self.start_session)(kind(fd, address, self.max_message_size), environ, pending)

    def start_session(self, transport: Transport, environ: dict[str, Any], pending: bytes = b"") -> None:
        """A new DDP session on `transport`, for the client of the request `environ`."""
        headers = _http_headers(environ)
        if not self.origins.trusts_cookies(environ):
            headers.pop("cookie", None)  # a page Django does not trust never acts with the user's cookies
        session = Session(self, transport, headers)
        self.sessions.add(session)
        self._connecting.append((time.monotonic(), session))
        session.start(pending)

    def close_sessions_logged_in_with(self, hashed_token: str) -> None:
        """A resume token was revoked (logout elsewhere, a password change...): close the
        connections logged in with it, as Meteor does; the client's resume then fails."""
        for session in list(self.sessions):
            if session.login_token == hashed_token:
                session.close(CLOSE_NORMAL, "logged out: its login token was revoked")

    def forget(self, session: Session) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._no_sessions.set()

    def _tick_heartbeats(self) -> None:
        """One greenlet drives every session's heartbeat and connect timeout, instead of a timer each."""
        periods = [self.connect_timeout]
        if self.heartbeat_interval > 0:
            periods += [self.heartbeat_interval, self.heartbeat_timeout]
        period = min(periods) / 4
        while True:
            gevent.sleep(period)
            now = time.monotonic()
            # Only the sessions opened a timeout ago can be due to have sent `connect`.
            while self._connecting and now - self._connecting[0][0] >= self.connect_timeout:
                self._connecting.popleft()[1].check_connect(now, self.connect_timeout)
            if self.heartbeat_interval <= 0:
                continue
            for number, session in enumerate(list(self.sessions), 1):
                if number % TICK_SLICE == 0:
                    # A pass over 10,000 sessions took 30 ms: live data and answers go
                    # out between slices of it, not after it.
                    gevent.sleep(0)
                session.check_heartbeat(now)

    def _wait_idle(self, deadline: float, hurry: Event) -> bool:
        """Wait until no session has a request received but unanswered; True if so.

        Gives up at `deadline` (a `time.monotonic()` value) or when `hurry` is set.
        """
        while not (self.workers.idle and all(session.idle for session in self.sessions)):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or hurry.is_set():
                return False
            hurry.wait(min(_IDLE_POLL, remaining))
        return True

    def shut_down(self, timeout: float, *, started: float | None = None, hurry: Event | None = None) -> None:
        """Stop taking sessions, let running methods finish, then close every session.

        Returns at most `timeout` + STOP_OVERRUN seconds after `started` (a
        `time.monotonic()` value; default now): running methods get until
        `started` + `timeout`; methods still running then are killed; every
        session is closed with 1001 and its client gets CLOSE_GRACE seconds
        to answer; then the hub and its Listener stop. With nothing running
        and clients that answer, it takes a round trip. Setting `hurry` (a
        second signal) cuts every wait short. (See STOP_OVERRUN for what
        many connections add.)
        """
        started = time.monotonic() if started is None else started
        hurry = hurry or Event()
        self.accepting = False
        if not self._wait_idle(started + timeout, hurry):
            waiting = sum(not session.idle for session in self.sessions)
            # A method abandoned here gets no result: its client reconnects (to
            # another process, or to this one restarted) and Meteor re-sends every
            # method not yet answered, so the call is retried, not lost.
            logger.warning(
                "%s with requests unanswered on %d connection(s): "
                "abandoning %d method call(s) still running or waiting",
                "second signal" if hurry.is_set() else f"DDDP_SHUTDOWN_TIMEOUT ({timeout:g}s) reached",
                waiting,
                self.workers.pending,
            )
        self.workers.stop(STOP_GRACE)
        self._no_sessions.clear()
        if not self.sessions:
            self._no_sessions.set()
        for session in list(self.sessions):
            session.shut_down()
        if self.test_services is not None:
            self.test_services.close_all()
        # Each close frame goes out in a writer greenlet: let them all write what the
        # sockets take now, so that the grace starts once the frames are sent.
        gevent.sleep(0)
        if not hurry.is_set():
            gevent.wait([self._no_sessions, hurry], timeout=CLOSE_GRACE, count=1)
        for session in list(self.sessions):
            session.abort("no answer to the close frame")  # shuts the socket; logs its close
        if self.test_services is not None:
            self.test_services.abort_all()
        self._ticker.kill(block=False)
        if self._heap_trimmer is not None:
            self._heap_trimmer.kill(block=False)
        if self._token_sweeper is not None:
            self._token_sweeper.kill(block=False)
        self.hub.stop(STOP_GRACE)


#: Seconds between sweeps of expired login tokens (Meteor's is 10 minutes).
TOKEN_SWEEP_INTERVAL = 600.0


def start_token_sweeper(workers: WorkerPool) -> gevent.Greenlet | None:
    """With dddp.accounts installed, delete expired login tokens now and then: the
    connections logged in with them close (in every server process)."""
    from django.apps import apps

    if not apps.is_installed("dddp.accounts"):
        return None
    from dddp.accounts.tokens import delete_expired

    def sweep() -> None:
        while True:
            gevent.sleep(TOKEN_SWEEP_INTERVAL)
            try:
                workers.run(delete_expired)
            except Exception:  # the database may be down: the next sweep tries again
                logger.warning("could not delete expired login tokens", exc_info=True)

    return gevent.spawn(sweep)


def _plain(start_response: Callable[..., Any], status: str, body: str) -> list[bytes]:
    data = body.encode("utf-8")
    start_response(
        status, [("Content-Type", "text/plain; charset=UTF-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


def _refuse(websocket: Any, code: int, reason: str) -> None:
    """Close a just-upgraded WebSocket at once (gevent-websocket's close leaves out the code)."""
    try:
        websocket.raw_write(close_frame(code, reason))
    except OSError:
        pass
    websocket.closed = True


def _buffered_input(handler: Any) -> bytes:
    """Bytes the HTTP handler read past the request (a client may send `connect` at once)."""
    handler.socket.setblocking(False)  # peek must not wait for more
    try:
        return bytes(handler.rfile.peek(65536))
    except (OSError, ValueError):
        return b""


def _http_headers(environ: dict[str, Any]) -> dict[str, str]:
    return {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }


class _TakenOver(WebSocket):  # type: ignore[misc]
    """gevent-websocket's WebSocket, once the server has taken its socket over.

    Its own `close()`, which its `__del__` calls when the handshake's handler
    lets it go, builds a throwaway class for an already closed one and then
    fails to write a close frame to the detached socket: a tenth of the
    server's CPU while thousands of clients connect. This one only lets go.
    """

    __slots__ = ()  # (a layout of WebSocket's own, for the `__class__` swap)

    def close(self, code: int = 1000, message: bytes = b"") -> None:
        self.closed = True  # type: ignore[misc]
        self.stream = self.raw_write = self.raw_read = self.environ = None  # type: ignore[misc]
