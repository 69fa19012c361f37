"""A minimal asyncio WebSocket + DDP client, just enough to hold thousands of idle sessions.

Hand-written rather than websocket-client or websockets: each held connection
should cost the client side one socket, two stream objects and one task, so
that a few client processes can hold 19,000 sessions on a two-core machine.
It speaks only what the capacity benchmark needs: the HTTP upgrade, masked text
frames out, unmasked frames in (text, ping, close), and DDP connect/sub/method.

`DDPClient` speaks DDP over any channel of texts (`send_text`, `receive_text`):
a `WebSocket` here, or SockJS's websocket and xhr-polling (`sockjs_clients.py`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from typing import Any, Protocol

OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x1, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000


class ConnectionEnded(Exception):
    """The server closed the connection, or answered something unexpected."""


def _masked(payload: bytes) -> bytes:
    """The payload XOR a fresh 4-byte key, prefixed by the key (RFC 6455 5.3: clients mask)."""
    key = os.urandom(4)
    size = len(payload)
    stream = (key * (size // 4 + 1))[:size]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
    return key + body


def frame_header(opcode: int, size: int) -> bytes:
    """The header of one final client frame of `size` bytes, mask bit set (the key follows)."""
    if size < 126:
        return struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    if size < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    return struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    return frame_header(opcode, len(payload)) + _masked(payload)


class WebSocket:
    """An upgraded connection: send text, receive whole unfragmented frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open_tcp(cls, host: str, port: int) -> WebSocket:
        """A TCP connection that is not upgraded yet (the benchmark's `tcp` stage stops here)."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def upgrade(self, host: str, port: int, path: str = "/websocket") -> None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        )
        self.writer.write(request.encode("ascii"))
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise ConnectionEnded("closed during the HTTP upgrade") from None
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionEnded(f"upgrade refused: {status.decode('latin-1')}")

    def send_text(self, text: str) -> None:
        self.writer.write(encode_frame(OPCODE_TEXT, text.encode("utf-8")))

    async def receive(self) -> tuple[int, bytes]:
        """The next frame's (opcode, payload); raises ConnectionEnded at EOF."""
        try:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(size) if size else b""
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ConnectionEnded(f"connection lost: {type(exc).__name__}") from None
        return first & 0x0F, payload

    async def receive_text(self) -> str:
        """The next text message, answering pings on the way; raises ConnectionEnded."""
        while True:
            opcode, payload = await self.receive()
            if opcode == OPCODE_TEXT:
                return payload.decode("utf-8")
            if opcode == OPCODE_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                raise ConnectionEnded(f"closed by the server ({code} {reason})")
            if opcode == OPCODE_PING:
                self.writer.write(encode_frame(OPCODE_PONG, payload))

    def writers(self) -> list[asyncio.StreamWriter]:
        """The streams `close` closes (a holder waits for them to flush)."""
        return [self.writer]

    def close(self) -> None:
        """Send a close frame and drop the socket without waiting for the echo."""
        if self.writer.is_closing():
            return
        try:
            self.writer.write(encode_frame(OPCODE_CLOSE, struct.pack("!H", CLOSE_NORMAL)))
        except (ConnectionError, RuntimeError):
            pass
        self.writer.close()


class Channel(Protocol):
    """What DDP runs over: whole texts in and out (a WebSocket, a SockJS session)."""

    def send_text(self, text: str) -> None: ...

    async def receive_text(self) -> str: ...


class DDPClient:
    """DDP over a channel of texts: answers pings itself, hands every other message to the caller."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.pings_answered = 0

    def send(self, message: dict[str, Any]) -> None:
        self.channel.send_text(json.dumps(message, separators=(",", ":")))

    async def receive(self) -> dict[str, Any]:
        """The next DDP message that is not a ping; raises ConnectionEnded."""
        while True:
            message: dict[str, Any] = json.loads(await self.channel.receive_text())
            if message.get("msg") == "ping":
                # Unanswered, the server drops us after its heartbeat timeout (D-22).
                pong = {"msg": "pong", **({"id": message["id"]} if "id" in message else {})}
                self.send(pong)
                self.pings_answered += 1
                continue
            return message

    async def receive_until(self, msg: str) -> dict[str, Any]:
        """Skip messages up to the first whose `msg` is `msg` (e.g. `added` before `ready`)."""
        while True:
            message = await self.receive()
            if message.get("msg") == msg:
                return message
            if message.get("msg") in ("error", "nosub", "failed"):
                raise ConnectionEnded(f"expected {msg!r}, got {message}")

    async def connect(self) -> str:
        self.send({"msg": "connect", "version": "1", "support": ["1"]})
        return str((await self.receive_until("connected"))["session"])

    async def subscribe(self, sub_id: str, name: str, params: list[Any]) -> int:
        """Subscribe; return how many documents (`added`) came before `ready`."""
        self.send({"msg": "sub", "id": sub_id, "name": name, "params": params})
        documents = 0
        while True:
            message = await self.receive()
            kind = message.get("msg")
            if kind == "added":
                documents += 1
            elif kind == "ready":
                if sub_id not in message.get("subs", []):
                    raise ConnectionEnded(f"ready for the wrong subscription: {message}")
                return documents
            elif kind in ("error", "nosub", "failed"):
                raise ConnectionEnded(f"expected 'ready', got {message}")

    async def call(self, method_id: str, name: str, params: list[Any]) -> Any:
        """A method's result; the `updated` that may come before or after it is skipped."""
        self.send({"msg": "method", "id": method_id, "method": name, "params": params})
        while True:
            message = await self.receive()
            if message.get("msg") == "result" and message.get("id") == method_id:
                if "error" in message:
                    raise ConnectionEnded(f"method {name} failed: {message['error']}")
                return message.get("result")

    async def idle(self) -> str:
        """Hold the session, answering pings, until the server ends it; returns why."""
        try:
            while True:
                await self.receive()
        except ConnectionEnded as exc:
            return str(exc)
