"""The SockJS services the sockjs-protocol test suite expects (table 3.5): a conformance tool.

`dddp --sockjs-test-services` mounts them beside DDP, as sockjs-node's own
test server does: `/echo` writes back every message, `/close` closes every
session at once with 3000 "Go away!", `/disabled_websocket_echo` is echo with
no websocket transports, `/cookie_needed_echo` is echo with JSESSIONID cookies
(S-22). They speak no DDP: each is a `SockJSEndpoints` whose new sessions'
transports are given to a small `TransportUser` here instead of a `Session`.
Off by default; a production server has no use for them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dddp.protocol import sockjs
from dddp.protocol.websocket import CLOSE_GOING_AWAY
from dddp.server.sockjs import SockJSEndpoints
from dddp.server.transport import Transport, TransportClosed

if TYPE_CHECKING:
    from dddp.server.app import DDPServer, StartSession

logger = logging.getLogger("dddp.server")

#: Bytes after which a streaming response is closed: the suite's test server has 4096.
RESPONSE_LIMIT = 4096


class _Connection:
    """One client of a test service: the transport's user, known to the services until it ends."""

    service = ""
    __slots__ = ("_services", "transport")

    def __init__(self, services: SockJSTestServices, transport: Transport):
        self._services = services
        self.transport = transport

    def opened(self) -> None:
        """The transport has started: the service's first move."""

    def receive(self, text: str) -> None:
        """A message from the client; the close service ignores them, as sockjs-node's does."""

    def receive_unreadable(self) -> None:
        """A binary frame on the raw websocket: no text to echo, ignored."""

    def transport_closing(self, reason: str) -> None:
        """Nothing to stop: a write after this fails and is ignored."""

    def output_drained(self) -> None:
        """Nothing waits for it."""

    def transport_ended(self, reason: str) -> None:
        """The connection is over: the services forget it."""
        logger.debug(
            "%s service: %s of %s ended: %s", self.service, self.transport.kind, _client(self), reason
        )
        self._services.forget(self)


class Echo(_Connection):
    """Writes every message it receives back to its client."""

    service = "echo"
    __slots__ = ()

    def receive(self, text: str) -> None:
        try:
            self.transport.write([text])
        except TransportClosed:
            pass  # the client is gone; its end is reported separately


class Closer(_Connection):
    """Closes its session as soon as it opens (S-14)."""

    service = "close"
    __slots__ = ()

    def opened(self) -> None:
        self.transport.close(*sockjs.CLOSE_GO_AWAY)


class SockJSTestServices:
    """The four services, their routing by path, and their live connections."""

    def __init__(
        self, server: DDPServer, *, heartbeat_delay: float, disconnect_delay: float, sockjs_url: str
    ):
        self.connections: set[_Connection] = set()

        def endpoints(prefix: str, kind: type[_Connection], **options: Any) -> SockJSEndpoints:
            return SockJSEndpoints(
                server,
                heartbeat_delay=heartbeat_delay,
                disconnect_delay=disconnect_delay,
                sockjs_url=sockjs_url,
                prefix=prefix,
                start_session=self._starter(kind),
                response_limit=RESPONSE_LIMIT,
                max_sessions_per_address=0,  # the suite's client is one address, opening many
                origins=None,  # the suite checks CORS answers to made-up origins
                **options,
            )

        self.services = (
            endpoints("/echo", Echo),
            endpoints("/close", Closer),
            endpoints("/disabled_websocket_echo", Echo, websocket=False),
            endpoints("/cookie_needed_echo", Echo, cookie_needed=True),
        )

    @property
    def prefixes(self) -> list[str]:
        return [service.prefix for service in self.services]

    def serving(self, path: str) -> SockJSEndpoints | None:
        """The service whose prefix `path` is under, if any."""
        for service in self.services:
            if service.serves(path):
                return service
        return None

    def _starter(self, kind: type[_Connection]) -> StartSession:
        def start(transport: Transport, environ: dict[str, Any], pending: bytes) -> None:
            connection = kind(self, transport)
            self.connections.add(connection)  # before start: pending input may be echoed at once
            logger.debug("%s service: %s opened from %s", kind.service, transport.kind, _client(connection))
            transport.start(connection, pending)
            connection.opened()

        return start

    def forget(self, connection: _Connection) -> None:
        self.connections.discard(connection)

    def close_all(self) -> None:
        """Server shutdown: every connection gets its transport's close, as DDP sessions do."""
        for connection in list(self.connections):
            connection.transport.close(CLOSE_GOING_AWAY, "server shutting down")

    def abort_all(self) -> None:
        """Server shutdown, after the close grace: shut what is left (aborts report nothing)."""
        for connection in list(self.connections):
            connection.transport.abort()
        self.connections.clear()


def _client(connection: _Connection) -> str:
    return connection.transport.client_address
