"""RFC 6455 framing, server side, without I/O: bytes in, messages out; frames to send.

Why our own: the server reads every socket from an event-loop callback, with no
greenlet per idle client (a greenlet blocked in `recv` costs about 8 KiB), so
it needs an incremental parser it can feed whatever `recv` returned. Limits
are checked from the frame header, before the payload is buffered.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009


class FrameError(Exception):
    """The client broke the protocol: close the connection with `code` and `reason`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class TextMessage:
    text: str


@dataclass(frozen=True)
class BinaryMessage:
    size: int


@dataclass(frozen=True)
class Ping:
    payload: bytes


@dataclass(frozen=True)
class Pong:
    payload: bytes


@dataclass(frozen=True)
class CloseRequest:
    """The client's close frame; answer with the same code (RFC 6455 5.5.1)."""

    code: int
    reason: str


@dataclass(frozen=True)
class Violation:
    """The client broke the protocol: close with `code` and `reason`; nothing follows."""

    code: int
    reason: str


Event = TextMessage | BinaryMessage | Ping | Pong | CloseRequest | Violation


#: Fragments one message may come in. Browsers and Node clients send whole
#: messages, or a few fragments of a large one.
MAX_FRAGMENTS = 1024


class FrameParser:
    """Turns the bytes a client sends into whole messages and control frames."""

    __slots__ = (
        "_closed",
        "_fragment_count",
        "_fragments",
        "_fragments_opcode",
        "_head",
        "_partial",
        "max_message_size",
    )

    def __init__(self, max_message_size: int):
        self.max_message_size = max_message_size
        self._head = b""  # the start of a frame whose header is not all in yet
        # The frame whose header is in but not all its payload: unmasked as each read
        # brings a piece, so that a big frame costs each read its share, and no read
        # copies or unmasks the whole of it at once.
        self._partial: _PartialFrame | None = None
        # A fragmented message's payload so far: one buffer, not one object per
        # fragment (a million one-byte fragments would cost 50 times their size).
        self._fragments = bytearray()
        self._fragment_count = 0
        self._fragments_opcode = 0
        self._closed = False

    def feed(self, data: bytes) -> list[Event]:
        """The events completed by `data`, in order; a Violation, if any, is the last."""
        if self._closed:
            return []
        events: list[Event] = []
        try:
            if self._partial is not None:
                data = self._continue(data, events)
            buffer = self._head + data if self._head else data
            self._head = b""
            offset = 0
            while not self._closed and offset < len(buffer):
                parsed = self._frame(buffer, offset)
                if parsed is None:
                    self._head = buffer[offset:]
                    break
                offset, event = parsed
                if event is not None:
                    events.append(event)
        except FrameError as exc:
            self._closed = True
            self._head, self._partial = b"", None
            events.append(Violation(exc.code, exc.reason))
        return events

    def close(self) -> None:
        """Parse nothing more: what was kept of unfinished frames and messages is dropped."""
        self._closed = True
        self._head, self._partial = b"", None
        self._fragments, self._fragment_count, self._fragments_opcode = bytearray(), 0, 0

    def _continue(self, data: bytes, events: list[Event]) -> bytes:
        """Add to the frame in progress; what follows it in `data`, if it is now complete."""
        partial = self._partial
        assert partial is not None
        missing = partial.length - partial.held
        partial.add(data[:missing])
        if partial.held < partial.length:
            return b""
        self._partial = None
        event = self._event(partial.opcode, partial.fin, partial.payload)
        if event is not None:
            events.append(event)
        return data[missing:]

    def _frame(self, buffer: bytes, start: int) -> tuple[int, Event | None] | None:
        """Parse one frame at `start`: (the offset after it, its event), or None if its header is incomplete.

        A frame whose payload is not all in is kept as the partial frame; its
        offset is then the end of the buffer, and its event comes with a later feed.
        """
        available = len(buffer) - start
        if available < 2:
            return None
        first, second = buffer[start], buffer[start + 1]
        fin, opcode, length = first & 0x80, first & 0x0F, second & 0x7F
        if first & 0x70:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set: no extension was negotiated")
        if not second & 0x80:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        header = 2
        if length == 126:
            header = 4
            if available < header:
                return None
            (length,) = struct.unpack_from("!H", buffer, start + 2)
        elif length == 127:
            header = 10
            if available < header:
                return None
            (length,) = struct.unpack_from("!Q", buffer, start + 2)
        self._check(opcode, bool(fin), length)
        if available < header + 4:
            return None
        mask = buffer[start + header : start + header + 4]
        payload_start = start + header + 4
        end = payload_start + length
        if len(buffer) < end:
            self._partial = _PartialFrame(opcode, bool(fin), length, mask)
            self._partial.add(buffer[payload_start:])
            return len(buffer), None
        payload = _unmask(buffer[payload_start:end], mask)
        return end, self._event(opcode, bool(fin), payload)

    def _check(self, opcode: int, fin: bool, length: int) -> None:
        """Refuse a frame from its header alone, before its payload is buffered."""
        if opcode >= OPCODE_CLOSE:
            if opcode not in (OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG):
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not fin or length > 125:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "control frames must be whole and at most 125 bytes")
            return
        if opcode not in (OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY):
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if opcode == OPCODE_CONTINUATION and not self._fragments_opcode:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
        if opcode != OPCODE_CONTINUATION and self._fragments_opcode:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        if opcode == OPCODE_CONTINUATION and self._fragment_count >= MAX_FRAGMENTS:
            # Empty fragments add nothing to the size: without a count they are free to send.
            raise FrameError(CLOSE_TOO_BIG, f"message in too many fragments: over {MAX_FRAGMENTS}")
        if len(self._fragments) + length > self.max_message_size:
            raise FrameError(
                CLOSE_TOO_BIG, f"message too big: over {self.max_message_size} bytes (DDDP_MAX_MESSAGE_SIZE)"
            )

    def _event(self, opcode: int, fin: bool, payload: bytes | bytearray) -> Event | None:
        if opcode == OPCODE_PING:
            return Ping(bytes(payload))
        if opcode == OPCODE_PONG:
            return Pong(bytes(payload))
        if opcode == OPCODE_CLOSE:
            self._closed = True
            return _close_request(bytes(payload))
        if opcode != OPCODE_CONTINUATION:
            self._fragments_opcode = opcode
        if not fin:
            self._fragments += payload
            self._fragment_count += 1
            return None
        if self._fragment_count:
            self._fragments += payload
            payload = bytes(self._fragments)
        message_opcode = self._fragments_opcode
        self._fragments, self._fragments_opcode, self._fragment_count = bytearray(), 0, 0
        if message_opcode == OPCODE_BINARY:
            return BinaryMessage(len(payload))
        try:
            return TextMessage(payload.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise FrameError(
                CLOSE_INVALID_DATA, f"text frame is not valid UTF-8 (byte {exc.start})"
            ) from None


def _close_request(payload: bytes) -> CloseRequest:
    if not payload:
        return CloseRequest(CLOSE_NO_STATUS, "")
    if len(payload) < 2:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "close frame with a one-byte payload")
    (code,) = struct.unpack_from("!H", payload)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None
    return CloseRequest(code, reason)


class _PartialFrame:
    """A frame whose payload is still coming: its header, and its payload so far, unmasked."""

    __slots__ = ("fin", "length", "mask", "opcode", "payload")

    def __init__(self, opcode: int, fin: bool, length: int, mask: bytes):
        self.opcode, self.fin, self.length, self.mask = opcode, fin, length, mask
        # One buffer, grown as pieces come (not allocated at `length` up front, which a
        # header alone would then cost): past 128 KiB, glibc gives it pages of its own,
        # which go back to the system when it is freed.
        self.payload = bytearray()

    @property
    def held(self) -> int:
        return len(self.payload)

    def add(self, piece: bytes) -> None:
        if piece:
            phase = len(self.payload) % 4  # where in the 4-byte key this piece starts
            self.payload += _unmask(piece, self.mask[phase:] + self.mask[:phase])


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, as one big-integer operation (fast for any size)."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def frame(opcode: int, payload: bytes) -> bytes:
    """A whole, unmasked server frame."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def text_frame(text: str) -> bytes:
    return frame(OPCODE_TEXT, text.encode("utf-8"))


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut to fit the 125-byte control frame limit."""
    reason_bytes = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return frame(OPCODE_CLOSE, struct.pack("!H", code) + reason_bytes)


def close_code_to_echo(code: int) -> int:
    """The code to answer a client's close with: theirs, unless it may not be sent."""
    if code in (CLOSE_NO_STATUS, 1006, 1015) or code < 1000 or code >= 5000:
        return CLOSE_NORMAL
    return code


class CloseHandshake:
    """The closing handshake of one connection (RFC 6455 7.1.2 to 7.1.4), without I/O.

    Whichever side closes first, each sends one close frame and the connection
    is over once both are sent: `close` is ours (None if one is already sent),
    `receive` the peer's (it returns the echo to send, or None when it answers
    ours). A closing connection reads no more messages.
    """

    __slots__ = ("peer_code", "sent")

    def __init__(self) -> None:
        self.sent = False
        self.peer_code: int | None = None  # the code of the peer's close frame, once received

    @property
    def closing(self) -> bool:
        """A close frame went one way or the other: no more messages are read or written."""
        return self.sent or self.peer_code is not None

    @property
    def done(self) -> bool:
        """Both close frames are sent: the TCP connection may be shut."""
        return self.sent and self.peer_code is not None

    def close(self, code: int, reason: str) -> bytes | None:
        """Our close frame, to send after what was queued; None if ours was already sent."""
        if self.sent:
            return None
        self.sent = True
        return close_frame(code, reason)

    def receive(self, request: CloseRequest) -> bytes | None:
        """The peer's close frame: the echo to send at once, or None if it answers ours."""
        if self.peer_code is not None:
            return None
        self.peer_code = request.code
        if self.sent:
            return None
        self.sent = True
        return close_frame(close_code_to_echo(request.code), "closed by the client")
