"""One DDP connection's protocol state, without I/O (sections 1.2 to 1.4).

Feed it each received frame's text with `receive(text, now)`; it answers what the
protocol alone can answer (`connected`, `failed`, `pong`, `error`) by queuing texts
for `take_outgoing()`, and returns the requests the application must handle, in
order. `check_heartbeat(now)` drives server-initiated pings (D-22). Time is passed
in, never read, so tests control it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from dddp.protocol import messages
from dddp.protocol.ids import random_id
from dddp.protocol.messages import BadMessage, CallMethod, Subscribe, Unsubscribe

#: Versions this server speaks, in order of preference (D-10).
SUPPORTED_VERSIONS = ("1", "pre2", "pre1")


@dataclass(frozen=True)
class SessionStarted:
    """The client connected: a new session with a fresh id (D-12, D-13)."""

    session_id: str
    version: str


@dataclass(frozen=True)
class CloseTransport:
    """The transport must be closed, after sending what is queued (D-11, D-22)."""

    reason: str


Event = SessionStarted | CloseTransport | Subscribe | Unsubscribe | CallMethod


class State(enum.Enum):
    AWAITING_CONNECT = "awaiting connect"
    CONNECTED = "connected"
    CLOSED = "closed"  # after `failed` or a heartbeat timeout: ignore everything (D-14)


class DDPConnection:
    """The server side of one DDP connection.

    Guarantees: every message received gets either an event or a protocol reply,
    except pongs and messages after the connection closed (D-14, D-24); a
    `ping` is answered in `take_outgoing()` right away, never behind a request.
    """

    def __init__(
        self,
        *,
        heartbeat_interval: float = 15.0,
        heartbeat_timeout: float = 15.0,
        max_params_size: int = 64 * 1024,
        new_session_id: Callable[[], str] = random_id,
    ):
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.max_params_size = max_params_size  # JSON characters of a sub's or method's params
        self._new_session_id = new_session_id
        self.state = State.AWAITING_CONNECT
        self.version: str | None = None
        self.session_id: str | None = None
        self._outgoing: list[str] = []
        self._last_received: float | None = None
        self._ping_sent_at: float | None = None

    def take_outgoing(self) -> list[str]:
        """The protocol's own replies queued since the last call, in order."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def receive(self, text: str, now: float) -> list[Event]:
        """Handle one received message's text; return what the application must do."""
        if self.state is State.CLOSED:
            return []
        self._last_received = now  # any message counts as liveness (D-21)
        try:
            message = messages.parse_client_message(text)
            if len(text) > self.max_params_size and self.state is State.CONNECTED:
                too_large = messages.params_too_large(message, self.max_params_size)
                if too_large:
                    self._outgoing.extend(too_large)
                    return []
            return self._dispatch(message, now)
        except messages.UnrepresentableMessage as bad:
            self._outgoing.extend(bad.answer(connected=self.state is State.CONNECTED))
            return []
        except BadMessage as bad:
            self._outgoing.append(messages.error(bad.reason, bad.offending))
            return []

    def _dispatch(self, message: messages.ClientMessage, now: float) -> list[Event]:
        kind = message.msg
        if kind == "connect":
            if self.state is State.CONNECTED:
                raise BadMessage("Already connected", message.raw)
            return self._negotiate(message, now)
        if self.state is not State.CONNECTED:
            raise BadMessage("Must connect first", message.raw)
        if self.version != "pre1":  # pre1 has no heartbeats (D-16)
            if kind == "ping":
                self._outgoing.append(messages.pong(message.raw.get("id", messages.NO_ID)))
                return []
            if kind == "pong":
                return []
        if kind == "sub":
            return [messages.validate_subscribe(message)]
        if kind == "unsub":
            return [Unsubscribe(message.raw.get("id"))]
        if kind == "method":
            return [messages.validate_method(message)]
        raise BadMessage("Bad request", message.raw)

    def _negotiate(self, message: messages.ClientMessage, now: float) -> list[Event]:
        """Version negotiation exactly as Meteor's `_handleConnect` (D-11, D-12)."""
        version = message.raw.get("version")
        support = message.raw.get("support")
        valid = (
            isinstance(version, str)
            and isinstance(support, list)
            and all(isinstance(v, str) for v in support)
            and version in support
        )
        chosen = SUPPORTED_VERSIONS[0]
        if valid:
            assert isinstance(support, list)
            chosen = next((v for v in support if v in SUPPORTED_VERSIONS), chosen)
        if not valid or chosen != version:
            self.state = State.CLOSED
            self._outgoing.append(messages.failed(chosen))
            return [CloseTransport(f"client asked for DDP version {version!r}; we offer {chosen!r}")]
        self.state = State.CONNECTED
        self.version = chosen
        self.session_id = self._new_session_id()  # never resumed (D-13)
        self._outgoing.append(messages.connected(self.session_id))
        return [SessionStarted(self.session_id, chosen)]

    def check_heartbeat(self, now: float) -> list[Event]:
        """Ping an idle client, or close a silent one (D-22). Call it every so often."""
        if (
            self.state is not State.CONNECTED
            or self.version == "pre1"
            or self.heartbeat_interval <= 0
            or self._last_received is None
        ):
            return []
        if self._ping_sent_at is not None:
            if self._last_received >= self._ping_sent_at:
                self._ping_sent_at = None  # anything received answers the ping (D-21)
            elif now - self._ping_sent_at >= self.heartbeat_timeout:
                self.state = State.CLOSED
                return [CloseTransport("heartbeat timed out")]
            else:
                return []
        if now - self._last_received >= self.heartbeat_interval:
            self._ping_sent_at = now
            self._outgoing.append(messages.ping())
        return []

    def client_alive(self, now: float) -> None:
        """Count the client as heard from at `now`, though nothing came: the server is not
        reading from it (backpressure), so its silence says nothing about its liveness."""
        if self._last_received is not None:
            self._last_received = now

    def close(self) -> None:
        """Mark the connection closed: later input is ignored (the transport went away)."""
        self.state = State.CLOSED
