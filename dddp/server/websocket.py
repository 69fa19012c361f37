"""Raw WebSocket transport (S-3, S-4): one DDP message per text frame.

gevent-websocket answers the HTTP upgrade; then the socket is taken from the
HTTP handler, whose greenlet ends, and read from an event-loop callback. An
idle client therefore costs no greenlet at all (one blocked in `recv` costs
about 8 KiB of saved stack), which is what lets a process hold tens of
thousands of clients. Frames are parsed by `dddp.protocol.websocket`.

Everything `on_readable` calls runs in the event loop's own context and must
never block: it only parses, queues and spawns. Blocking writes happen in the
session's writer greenlet, through `send`.
"""

from __future__ import annotations

import _socket
import socket
from typing import Any, Protocol

from gevent import get_hub
from gevent.socket import wait_write

from dddp.protocol.websocket import Event, FrameParser


class TransportClosed(Exception):
    """The socket is gone: nothing more can be sent."""


class Receiver(Protocol):
    def frame_received(self, event: Event) -> None: ...

    def transport_lost(self, reason: str) -> None: ...


class WebSocketTransport:
    """One client socket: frames in through a read watcher, bytes out without blocking the loop."""

    kind = "websocket"
    __slots__ = ("_parser", "_receiver", "_sock", "_watcher", "_writing", "client_address", "closed")

    def __init__(self, fd: int, client_address: str, max_message_size: int):
        self._sock = _socket.socket(fileno=fd)  # the C socket: gevent must not wrap it
        self._sock.setblocking(False)
        if self._sock.family in (socket.AF_INET, socket.AF_INET6):
            # Without this, Nagle's algorithm holds a small message (a `ready`
            # after a publication's documents, a lone `changed`) until the client
            # ACKs what went before, and clients delay ACKs by up to 40 ms.
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._parser = FrameParser(max_message_size)
        self._receiver: Receiver | None = None
        self._watcher: Any = None
        self._writing = False
        self.client_address = client_address
        self.closed = False

    def start(self, receiver: Receiver, pending: bytes = b"") -> None:
        """Start reading; `pending` is what the HTTP handler had already read past the upgrade."""
        self._receiver = receiver
        self._watcher = get_hub().loop.io(self._sock.fileno(), 1)
        self._watcher.start(self._on_readable)
        if pending:
            self._deliver(pending)

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"socket error: {exc}")
            return
        if not data:
            self._lost("the client went away without a close frame")
            return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        assert self._receiver is not None
        for event in self._parser.feed(data):
            if self.closed:
                return
            self._receiver.frame_received(event)

    def _lost(self, reason: str) -> None:
        self.shut()
        if self._receiver is not None:
            self._receiver.transport_lost(reason)

    def try_send(self, data: bytes) -> bytes:
        """Send what the socket takes now, without waiting; return the rest."""
        if self.closed:
            raise TransportClosed("transport closed")
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return data
        except OSError as exc:
            self.shut()
            raise TransportClosed(f"socket error: {exc}") from None
        return data[sent:]

    def send(self, data: bytes) -> None:
        """Send all of `data`, waiting (cooperatively) while the socket is full."""
        self._writing = True
        try:
            while data:
                data = self.try_send(data)
                if data:
                    wait_write(self._sock.fileno())
        finally:
            self._writing = False
            if self.closed:
                self._close_socket()

    def shut(self) -> None:
        """Stop reading and end the connection (no close frame: see the session's close)."""
        if self.closed:
            return
        self.closed = True
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if not self._writing:  # else the writer, woken by the shutdown, closes it
            self._close_socket()

    def _close_socket(self) -> None:
        if self._sock.fileno() != -1:
            self._sock.close()
