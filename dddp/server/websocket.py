"""Raw WebSocket transport (S-3, S-4): one DDP message per text frame.

gevent-websocket does the HTTP upgrade; reading is ours, because its reader
accepts frames of any size into memory before anyone can object, and checks
UTF-8 in pure Python byte by byte. Here the size limit is checked from the frame
header, before the payload is read, and UTF-8 is checked by `bytes.decode`.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.websocket import Header, WebSocket

OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA

# RFC 6455 close codes used here.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009


class TransportClosed(Exception):
    """The peer is gone, or the transport was closed: stop reading."""


class FrameRejected(Exception):
    """A frame we refuse; the connection is closed with `code` and `reason`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class BinaryMessage:
    """A complete binary message: DDP is text, so the session answers "Bad request"."""

    def __init__(self, size: int):
        self.size = size


class WebSocketTransport:
    """Reads whole messages and writes text frames on an upgraded connection."""

    kind = "websocket"

    def __init__(self, websocket: WebSocket, max_message_size: int):
        self.websocket = websocket
        self.max_message_size = max_message_size
        self.closed = False

    @property
    def client_address(self) -> str:
        environ: dict[str, Any] = self.websocket.environ or {}
        return f"{environ.get('REMOTE_ADDR', '')}:{environ.get('REMOTE_PORT', '')}"

    def receive(self) -> str | BinaryMessage:
        """The next whole message; raises TransportClosed or FrameRejected."""
        opcode = None
        parts: list[bytes] = []
        size = 0
        while True:
            header, payload = self._read_frame(size)
            if header.opcode in (OPCODE_TEXT, OPCODE_BINARY):
                if opcode is not None:
                    raise FrameRejected(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                opcode = header.opcode
            elif header.opcode == OPCODE_CONTINUATION:
                if opcode is None:
                    raise FrameRejected(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
            elif header.opcode == OPCODE_PING:
                self._send_frame(payload, OPCODE_PONG)
                continue
            elif header.opcode == OPCODE_PONG:
                continue
            elif header.opcode == OPCODE_CLOSE:
                self._answer_close(payload)
                raise TransportClosed("closed by the client")
            else:
                raise FrameRejected(CLOSE_PROTOCOL_ERROR, f"unknown opcode {header.opcode}")
            parts.append(payload)
            size += len(payload)
            if header.fin:
                break
        data = b"".join(parts)
        if opcode == OPCODE_BINARY:
            return BinaryMessage(len(data))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameRejected(
                CLOSE_INVALID_DATA, f"text frame is not valid UTF-8 (byte {exc.start})"
            ) from None

    def _read_frame(self, size_so_far: int) -> tuple[Header, bytes]:
        if self.closed:
            raise TransportClosed("transport closed")
        try:
            header = Header.decode_header(self.websocket.stream)
        except WebSocketError as exc:
            raise TransportClosed(str(exc)) from None
        except OSError as exc:
            raise TransportClosed(f"socket error: {exc}") from None
        if header.flags:
            raise FrameRejected(CLOSE_PROTOCOL_ERROR, "reserved bits set: no extension was negotiated")
        if header.opcode < OPCODE_CLOSE and size_so_far + header.length > self.max_message_size:
            raise FrameRejected(
                CLOSE_TOO_BIG,
                f"message too big: over {self.max_message_size} bytes (DDDP_MAX_MESSAGE_SIZE)",
            )
        payload = b""
        if header.length:
            try:
                payload = self.websocket.raw_read(header.length)
            except OSError as exc:
                raise TransportClosed(f"socket error: {exc}") from None
            if len(payload) != header.length:
                raise TransportClosed("connection lost in the middle of a frame")
        if header.mask:
            payload = bytes(header.unmask_payload(payload))
        return header, payload

    def _answer_close(self, payload: bytes) -> None:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NORMAL
        # Echo the client's code, as RFC 6455 section 5.5.1 asks; but never echo
        # a code that may not be sent on the wire.
        if code in (1005, 1006, 1015) or code < 1000:
            code = CLOSE_NORMAL
        self.close(code, "")

    def send(self, text: str) -> None:
        """Send one DDP message as a text frame; raises TransportClosed."""
        self._send_frame(text.encode("utf-8"), OPCODE_TEXT)

    def _send_frame(self, payload: bytes, opcode: int) -> None:
        if self.closed:
            raise TransportClosed("transport closed")
        header = Header.encode_header(True, opcode, b"", len(payload), 0)
        try:
            self.websocket.raw_write(header + payload)
        except (OSError, AttributeError) as exc:
            self.closed = True
            raise TransportClosed(f"socket error: {exc}") from None

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame (once) and stop; the socket closes when the handler returns."""
        if self.closed:
            return
        reason_bytes = reason.encode("utf-8")[:123]  # a control frame holds 125 bytes
        try:
            self._send_frame(struct.pack("!H", code) + reason_bytes, OPCODE_CLOSE)
        except TransportClosed:
            pass
        self.closed = True
        self.websocket.closed = True  # so gevent-websocket does not send a second close frame

    def abort(self) -> None:
        """Shut the socket without a close frame (a slow or silent client)."""
        self.closed = True
        self.websocket.closed = True
        sock = getattr(self.websocket.handler, "socket", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
