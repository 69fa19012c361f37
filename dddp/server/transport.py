"""What a DDP session needs of a transport, and what a transport tells its session.

A `Session` deals in message texts only. Each way a client can reach the
server (the raw WebSocket today; the SockJS transports, whose sessions outlive
any one HTTP request, next) implements `Transport`: it frames texts for its
wire, buffers what its client cannot take yet, and runs its own way of
closing. It reports to a `TransportUser` (the session): texts received, and
the end of the connection.

The guarantees every transport gives, and the session relies on:
- `write` and `close` never block: they may run in the event loop's callbacks;
- texts go out in the order written, and `close` comes after them;
- `pending_bytes` counts what was written but is not yet out, so that the
  session can drop a client too slow to keep up;
- `user.transport_ended` is called exactly once, when the connection is over,
  whichever side ended it (except after `abort`, which the session itself calls);
- after `pause_reading`, the transport delivers no more input than it had
  already read, until `resume_reading`: the client's own sends then wait, in
  its socket or in its HTTP request (backpressure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol


class SharedBatch(list[str]):
    """Message texts that many sessions write as they are (a publication's current documents,
    `dddp.server.snapshot`): each kind of transport frames them once, here, not once per session.
    """

    __slots__ = ("_frames",)

    def __init__(self, texts: Iterable[str]):
        super().__init__(texts)
        self._frames: dict[str, bytes] = {}

    def framed(self, kind: str, frame: Callable[[Sequence[str]], bytes]) -> bytes:
        """`frame(self)`, made once per `kind` of framing and kept as long as the batch."""
        data = self._frames.get(kind)
        if data is None:
            data = self._frames[kind] = frame(self)
        return data


class TransportClosed(Exception):
    """The connection is gone: nothing more can be sent."""


class TransportUser(Protocol):
    """The session's side: what a transport calls."""

    def receive(self, text: str) -> None:
        """One DDP message text from the client (called in order, must not block)."""

    def receive_unreadable(self) -> None:
        """A message that cannot be a DDP text (a binary WebSocket frame)."""

    def transport_closing(self, reason: str) -> None:
        """The client (or a protocol violation) began closing: read and send no more."""

    def transport_ended(self, reason: str) -> None:
        """The connection is over; the session can be forgotten."""

    def output_drained(self) -> None:
        """The client has taken everything written so far (called when it had to wait)."""


class Transport(Protocol):
    """The connection's side: what a session calls."""

    #: What kind of transport, for logs ("websocket", "sockjs/xhr-polling"...).
    kind: str
    #: "host:port" of the client, as the server saw it.
    client_address: str

    def start(self, user: TransportUser, pending: bytes = b"") -> None:
        """Begin delivering the client's messages to `user`."""

    def write(self, texts: Sequence[str]) -> int:
        """Send these messages, in order, after what was written before; never blocks.

        Returns `pending_bytes` after the write (0 when the client took it all).
        Raises TransportClosed when the connection is gone.
        """

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet taken by the client's connection."""

    def drained(self) -> None:
        """Wait (cooperatively) until nothing written is pending. Raises TransportClosed."""

    def close(self, code: int, reason: str) -> None:
        """End the connection after what was written, the transport's own way; never blocks."""

    def pause_reading(self) -> None:
        """Read nothing more from the client until `resume_reading` (what was read is delivered)."""

    def resume_reading(self) -> None:
        """Read from the client again."""

    def abort(self) -> None:
        """End the connection at once: nothing more is sent, nothing is reported."""
