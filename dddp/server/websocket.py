"""Raw WebSocket transport (S-3, S-4): one DDP message per text frame.

gevent-websocket answers the HTTP upgrade; then the socket is taken from the
HTTP handler, whose greenlet ends, and read from an event-loop callback. An
idle client therefore costs no greenlet at all (one blocked in `recv` costs
about 8 KiB of saved stack), which is what lets a process hold tens of
thousands of clients. Frames are parsed, and the closing handshake is kept,
by `dddp.protocol.websocket`.

Everything `_on_readable` calls runs in the event loop's own context and must
never block: it only parses, queues and spawns. Output goes straight to the
socket when it takes it; what it cannot take waits in `_pending`, written by a
flusher greenlet that lives only while something waits.
"""

from __future__ import annotations

import _socket
import logging
import socket
from collections.abc import Sequence
from typing import Any

import gevent
from gevent import get_hub
from gevent.event import Event
from gevent.socket import wait_write

from dddp.protocol.websocket import (
    OPCODE_PONG,
    BinaryMessage,
    CloseHandshake,
    CloseRequest,
    FrameParser,
    Ping,
    TextMessage,
    Violation,
    frame,
    text_frame,
)
from dddp.server.transport import SharedBatch, TransportClosed, TransportUser

logger = logging.getLogger("dddp.server")

#: Seconds a client has to answer our close frame before its socket is shut; also, when
#: the client closes first, to read what was still pending before our answer.
CLOSE_HANDSHAKE_TIMEOUT = 5.0


class WebSocketTransport:
    """One client socket: frames in through a read watcher, bytes out without blocking the loop."""

    kind = "websocket"
    __slots__ = (
        "_close_timer",
        "_drained",
        "_failed",
        "_flusher",
        "_handshake",
        "_parser",
        "_pending",
        "_sock",
        "_user",
        "_watcher",
        "client_address",
        "closed",
    )

    def __init__(self, fd: int, client_address: str, max_message_size: int):
        self._sock = _socket.socket(fileno=fd)  # the C socket: gevent must not wrap it
        self._sock.setblocking(False)
        if self._sock.family in (socket.AF_INET, socket.AF_INET6):
            # Without this, Nagle's algorithm holds a small message (a `ready`
            # after a publication's documents, a lone `changed`) until the client
            # ACKs what went before, and clients delay ACKs by up to 40 ms.
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._parser = FrameParser(max_message_size)
        self._failed: str | None = None  # the client broke the protocol: why
        self._handshake = CloseHandshake()
        self._user: TransportUser | None = None
        self._watcher: Any = None
        # Written, not yet taken by the socket; a bytearray, as its appends and its
        # removals from the front cost only what they add or take.
        self._pending = bytearray()
        self._flusher: gevent.Greenlet | None = None
        self._drained: Event | None = None  # made only while someone waits for it
        self._close_timer: Any = None
        self.client_address = client_address
        self.closed = False  # the socket is shut: nothing more in or out

    def start(self, user: TransportUser, pending: bytes = b"") -> None:
        """Start reading; `pending` is what the HTTP handler had already read past the upgrade."""
        self._user = user
        self._watcher = get_hub().loop.io(self._sock.fileno(), 1)
        self._watcher.start(self._on_readable)
        if pending:
            self._deliver(pending)

    # --- reading (in the event loop) -------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._end(f"socket error: {exc}")
            return
        if not data:
            self._end("the client went away without a close frame")
            return
        try:
            self._deliver(data)
        except Exception:  # a bug of ours must not end the server's loop
            logger.exception("%s transport of %s: failed to handle its input", self.kind, self.client_address)

    def _deliver(self, data: bytes) -> None:
        user = self._user
        assert user is not None
        for event in self._parser.feed(data):
            if self.closed or (self._handshake.closing and not isinstance(event, CloseRequest)):
                continue  # a closing connection reads only the close frame that answers ours
            if isinstance(event, TextMessage):
                user.receive(event.text)
            elif isinstance(event, BinaryMessage):
                user.receive_unreadable()
            elif isinstance(event, Ping):
                self._send_now(frame(OPCODE_PONG, event.payload))
            elif isinstance(event, CloseRequest):
                echo = self._handshake.receive(event)
                if echo is not None:  # the client closes first: answer at once, after what is pending
                    user.transport_closing("closed by the client")
                    self._send_now(echo)
                    if self._pending and self._close_timer is None:
                        # A client that closes need not read what was pending before our
                        # answer (a zombie would hold it for ever): it has a while to.
                        self._close_timer = gevent.spawn_later(
                            CLOSE_HANDSHAKE_TIMEOUT, self._end, "closed by the client, without reading"
                        )
                self._end_when_done("closed by the client")
            elif isinstance(event, Violation):
                user.transport_closing(event.reason)
                self._fail(event.code, event.reason)

    # --- writing -----------------------------------------------------------------

    def write(self, texts: Sequence[str]) -> int:
        """Frame the texts and send them now, or after what is pending; never blocks."""
        if self.closed or self._handshake.sent:
            raise TransportClosed("transport closed")
        if isinstance(texts, SharedBatch):
            data = texts.framed("websocket", _joined_frames)
        elif len(texts) == 1:
            data = frame_of(texts[0])
        else:
            data = frames_of(texts)
        if not self._send_now(data):
            raise TransportClosed("transport closed")
        return len(self._pending)

    def write_head(self, data: bytes) -> bool:
        """Send bytes that are not a frame, before any: the 101 of an upgrade taken the short
        way (dddp.server.upgrades), in one send on the bare socket. False if it is gone."""
        return self._send_now(data)

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def drained(self) -> None:
        """Wait until the socket has taken everything written."""
        while self._pending and not self.closed:
            if self._drained is None:
                self._drained = Event()
            self._drained.wait()
        if self.closed:
            raise TransportClosed("transport closed")

    def close(self, code: int, reason: str) -> None:
        """Our close frame after what is pending; the client's answer (or a timeout) ends it."""
        close = self._handshake.close(code, reason)
        if close is None or self.closed:
            return
        self._send_now(close)
        if self._handshake.done:
            self._end_when_done(reason)
        else:
            self._close_timer = gevent.spawn_later(
                CLOSE_HANDSHAKE_TIMEOUT, self._end, "no answer to our close frame"
            )

    def _fail(self, code: int, reason: str) -> None:
        """The client broke the protocol: our close frame, then the end once it is out (RFC 6455 7.1.7).

        Nothing the client sends after the violation can be parsed, not even a close
        frame answering ours, so waiting for one only read and dropped whatever it
        went on sending (a flood of fragments, for CLOSE_HANDSHAKE_TIMEOUT).
        """
        close = self._handshake.close(code, reason)
        if self.closed:
            return
        if close is not None:
            self._send_now(close)
        self._failed = reason
        self.pause_reading()
        if not self._pending:
            self._end(reason)
        elif self._close_timer is None:
            self._close_timer = gevent.spawn_later(CLOSE_HANDSHAKE_TIMEOUT, self._end, reason)

    def pause_reading(self) -> None:
        """Stop the read watcher: the kernel's buffers fill, then the client's sends wait."""
        if self._watcher is not None:
            self._watcher.stop()

    def resume_reading(self) -> None:
        if self._watcher is not None and not self.closed and self._failed is None:
            self._watcher.start(self._on_readable)

    def abort(self) -> None:
        """Shut the socket now; nothing more is sent or reported."""
        self._shut()

    def _send_now(self, data: bytes) -> bool:
        """Send what the socket takes, keep the rest for the flusher; False if the socket is gone."""
        if self.closed:
            return False
        if self._pending:
            self._pending += data
            return True
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._end(f"socket error: {exc}")
            return False
        if sent < len(data):
            self._pending += memoryview(data)[sent:]
            self._flusher = gevent.spawn(self._flush)
        return True

    def _flush(self) -> None:
        """The flusher greenlet: write what is pending as the socket takes it."""
        try:
            while self._pending and not self.closed:
                try:
                    sent = self._sock.send(self._pending)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    self._end(f"socket error: {exc}")
                    return
                del self._pending[:sent]
                if self._pending:
                    wait_write(self._sock.fileno())
        finally:
            self._flusher = None
            if self._drained is not None:
                self._drained.set()
                self._drained = None
            if not self._pending and not self.closed and self._user is not None:
                self._user.output_drained()
            self._end_when_done("closed")
            if self.closed:
                self._close_socket()

    # --- the end -----------------------------------------------------------------

    def _end_when_done(self, reason: str) -> None:
        """Both close frames are sent: shut the connection once our frame is out (RFC 6455 7.1.1)."""
        if self._failed is not None and not self._pending:
            self._end(self._failed)
        elif self._handshake.done and not self._pending:
            self._end(reason)

    def _end(self, reason: str) -> None:
        if self.closed:
            return
        self._shut()
        if self._user is not None:
            self._user.transport_ended(reason)

    def _shut(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._close_timer is not None:
            self._close_timer.kill(block=False)
            self._close_timer = None
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        # Nothing more is read or sent: what is held for either goes now, not when the
        # cyclic collector frees the transport (see Session._finish).
        self._parser.close()
        self._pending = bytearray()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._drained is not None:
            self._drained.set()
            self._drained = None
        if self._flusher is None or self._flusher is gevent.getcurrent():
            self._close_socket()  # else the flusher, woken by the shutdown, closes it

    def _close_socket(self) -> None:
        if self._sock.fileno() != -1:
            self._sock.close()


class FrameCache:
    """Frames of recent texts, by the texts' identities: the same message text goes to every
    session an observer serves, and is framed once.

    Bounded in entries and in bytes (text and frame): a cache must not keep large
    texts alive (a client's megabyte pong, sent once, would otherwise stay).
    Texts larger than a quarter of the bytes are framed and not kept.
    """

    def __init__(self, entries: int = 256, max_bytes: int = 4 << 20):
        self.entries = entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._frames: dict[Any, tuple[Any, bytes]] = {}

    def get(self, key: Any) -> tuple[Any, bytes] | None:
        """(texts, frame) cached for `key`; the caller checks they are its very texts."""
        return self._frames.get(key)

    def put(self, key: Any, texts: Any, size: int, data: bytes) -> None:
        cost = size + len(data)
        if cost > self.max_bytes // 4:
            return
        if len(self._frames) >= self.entries or self.bytes + cost > self.max_bytes:
            self._frames.clear()
            self.bytes = 0
        self._frames[key] = (texts, data)  # keeping the texts alive keeps their ids from being reused
        self.bytes += cost

    def clear(self) -> None:
        self._frames.clear()
        self.bytes = 0


_frames = FrameCache()


def frame_of(text: str) -> bytes:
    """The text frame of `text`, made once however many sessions send it."""
    cached = _frames.get(id(text))
    if cached is not None and cached[0] is text:
        return cached[1]
    data = text_frame(text)
    _frames.put(id(text), text, len(text), data)
    return data


def frames_of(texts: Sequence[str]) -> bytes:
    """The text frames of `texts`, one after the other."""
    return b"".join(frame_of(text) for text in texts)


def _joined_frames(texts: Sequence[str]) -> bytes:
    # A SharedBatch keeps its own frames: its texts would only crowd the cache out.
    return b"".join(map(text_frame, texts))
