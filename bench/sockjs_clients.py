"""SockJS clients for the benchmarks: the websocket and xhr-polling transports, in asyncio.

Hand-written, as `wsclient.py` is (no new dependency; docs/ddp-protocol.md
section 3 is the wire format):

- `SockJSWebSocket`: a WebSocket to `/sockjs/<server>/<session>/websocket`.
  The server's first text is `o`; then `a[...]` frames carry one or more
  JSON-encoded message texts, `h` is a heartbeat, `c[code,"reason"]` closes.
  Each message goes out as `["<json text>"]` (S-10, S-11).
- `XhrPolling`: two keep-alive HTTP/1.1 connections per session, one for the
  long polls (`POST .../xhr`, each answered `o\\n`, `h\\n`, `a[...]\\n` or
  `c[...]\\n`) and one for sending (`POST .../xhr_send`, a JSON array body,
  answered 204). Bodies come with a Content-Length (dddp) or chunked (Node).
  What is sent while a send is in flight goes in the next one, as one array.
  Against a loopback server each session connects from an address of its
  own in 127.0.0.0/8, as distinct browsers would: dddp limits the HTTP
  sessions of one client address (DDDP_SOCKJS_MAX_SESSIONS_PER_ADDRESS).

Both are channels of texts (`send_text`, `receive_text`) for `wsclient.DDPClient`,
which the capacity benchmark (`clientpool.py`) holds by the thousand.

`xhr_worker_main` is a client process of the live-data benchmarks for
xhr-polling (kinds `xhr-ddp` and `xhr-floor`): it answers the same pipe
commands as `live_clients.Worker`, and takes its samples the same way
(receipt time minus `sent_at`, scanned from the poll's body as soon as it is
read), but runs on asyncio: each of its clients is a task that polls again as
soon as a poll is answered.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import time
from array import array
from collections import Counter, deque
from multiprocessing.connection import Connection
from typing import Any

from live_clients import SENT_AT, SOCKJS_SENT_AT, Window, sockjs_path
from wsclient import ConnectionEnded, DDPClient, WebSocket

PREFIX = "/sockjs"
SEND_CONTENT_TYPE = "text/plain;charset=UTF-8"  # what sockjs-client sends


def frame_texts(frame: str) -> list[str]:
    """The message texts of one SockJS frame (none for `h`); ConnectionEnded for `c` or nonsense."""
    if frame.startswith("a"):
        texts = json.loads(frame[1:])
        if not isinstance(texts, list):
            raise ConnectionEnded(f"not an array of texts: {frame[:100]!r}")
        return texts
    if frame == "h":
        return []
    if frame.startswith("c"):
        raise ConnectionEnded(f"closed by the server: {frame[:100]}")
    if frame == "o":
        raise ConnectionEnded("a second `o`: the server took this for a new session")
    raise ConnectionEnded(f"unexpected SockJS frame {frame[:100]!r}")


# --- the websocket transport -------------------------------------------------------


class SockJSWebSocket:
    """The SockJS websocket transport: a WebSocket whose texts are SockJS frames."""

    def __init__(self, websocket: WebSocket):
        self.websocket = websocket
        self.inbox: deque[str] = deque()

    @classmethod
    async def open_tcp(cls, host: str, port: int) -> SockJSWebSocket:
        return cls(await WebSocket.open_tcp(host, port))

    @property
    def reader(self) -> asyncio.StreamReader:
        return self.websocket.reader

    async def upgrade(self, host: str, port: int, prefix: str = PREFIX) -> None:
        """The HTTP upgrade, then the server's `o`."""
        await self.websocket.upgrade(host, port, sockjs_path(prefix, "websocket"))
        frame = await self.websocket.receive_text()
        if frame != "o":
            raise ConnectionEnded(f"expected the open frame, got {frame[:100]!r}")

    def send_text(self, text: str) -> None:
        self.websocket.send_text(json.dumps([text], separators=(",", ":")))

    async def receive_text(self) -> str:
        while not self.inbox:
            self.inbox.extend(frame_texts(await self.websocket.receive_text()))
        return self.inbox.popleft()

    def writers(self) -> list[asyncio.StreamWriter]:
        return self.websocket.writers()

    def close(self) -> None:
        self.websocket.close()


# --- xhr-polling ---------------------------------------------------------------------


def source_address(host: str) -> str | None:
    """A random loopback address to connect to `host` from, if it is a loopback address itself."""
    if not host.startswith("127."):
        return None
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


class HttpConnection:
    """One keep-alive HTTP/1.1 connection making one POST at a time; reconnects if the server closed it."""

    def __init__(self, host: str, port: int, local_host: str | None = None):
        self.host = host
        self.port = port
        self.local_host = local_host
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.requests = 0  # on the current TCP connection

    async def connect(self) -> None:
        self.close()
        local = (self.local_host, 0) if self.local_host else None
        # asyncio sets TCP_NODELAY on its TCP connections.
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, local_addr=local)
        self.requests = 0

    async def post(
        self, path: str, body: bytes = b"", content_type: str | None = None
    ) -> tuple[int, bytes, float]:
        """(status, body, time.time() when the body had been read)."""
        for attempt in (1, 2):
            if self.reader is None or self.writer is None or self.writer.is_closing() or self.reader.at_eof():
                await self.connect()
            assert self.reader is not None and self.writer is not None
            head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
            if content_type:
                head += f"Content-Type: {content_type}\r\n"
            self.writer.write(head.encode("ascii") + b"\r\n" + body)
            self.requests += 1
            try:
                return await self._response(self.reader)
            except asyncio.IncompleteReadError as exc:
                # A kept-alive connection the server closed just as this request went out:
                # nothing of it was answered, so it is sent again on a fresh one.
                if attempt == 1 and self.requests > 1 and not exc.partial:
                    self.close()
                    continue
                self.close()
                raise ConnectionEnded(f"connection lost during POST {path}") from None
            except ConnectionError as exc:
                self.close()
                raise ConnectionEnded(f"connection lost during POST {path}: {type(exc).__name__}") from None
        raise AssertionError("unreachable")

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes, float]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head[:-4].split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionEnded(f"not an HTTP response: {status_line[:100]!r}")
        status = int(parts[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()  # until the server closes
            self.close()
        at = time.time()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body, at

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])

    def close(self) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.close()


class XhrPolling:
    """A SockJS xhr-polling session: a channel of texts over a polling and a sending connection."""

    def __init__(self, host: str, port: int, prefix: str = PREFIX):
        base = sockjs_path(prefix, "xhr")
        self.poll_path, self.send_path = base, base + "_send"
        local_host = source_address(host)
        self.poller = HttpConnection(host, port, local_host)
        self.sender = HttpConnection(host, port, local_host)
        self.inbox: deque[str] = deque()
        self.outbox: list[str] = []
        self.sending: asyncio.Task[None] | None = None
        self.error: str | None = None  # why a send failed
        self.polling = False  # a long poll is open
        self.closed = False

    async def connect_tcp(self) -> None:
        await self.poller.connect()
        await self.sender.connect()

    async def open(self) -> None:
        """The first poll, which opens the session: `o`."""
        frame = await self.poll()
        if frame != "o":
            raise ConnectionEnded(f"expected the open frame, got {frame[:100]!r}")

    async def poll_raw(self) -> tuple[bytes, float]:
        """One receiving request: its body, and when it was read."""
        self.polling = True
        try:
            status, body, at = await self.poller.post(self.poll_path)
        finally:
            self.polling = False
        if status != 200:
            raise ConnectionEnded(f"xhr answered {status}: {body[:100]!r}")
        return body, at

    async def poll(self) -> str:
        body, _at = await self.poll_raw()
        return body.decode("utf-8").rstrip("\n")

    def send_text(self, text: str) -> None:
        if self.closed:
            return
        self.outbox.append(text)
        if self.sending is None or self.sending.done():
            self.sending = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self.outbox and not self.closed:
            batch, self.outbox = self.outbox, []
            body = json.dumps(batch, separators=(",", ":")).encode("utf-8")
            try:
                status, answer, _at = await self.sender.post(self.send_path, body, SEND_CONTENT_TYPE)
            except (ConnectionEnded, OSError) as exc:
                self.error = f"xhr_send failed: {exc}"
                return
            if status != 204:
                self.error = f"xhr_send answered {status}: {answer[:100]!r}"
                return

    async def flushed(self) -> None:
        """Wait until what was sent has been answered; ConnectionEnded if a send failed."""
        if self.sending is not None:
            await self.sending
        if self.error:
            raise ConnectionEnded(self.error)

    async def receive_text(self) -> str:
        while not self.inbox:
            if self.error:
                raise ConnectionEnded(self.error)
            self.inbox.extend(frame_texts(await self.poll()))
        return self.inbox.popleft()

    async def leave(self) -> None:
        """Close with a long poll open, as a closed browser tab does.

        SockJS has no message that ends a polling session; a server that
        watches its waiting polls for end-of-file ends it at once, any other
        when its disconnect delay runs out.
        """
        writer = self.poller.writer
        if writer is not None and not writer.is_closing() and not self.polling:
            request = f"POST {self.poll_path} HTTP/1.1\r\nHost: {self.poller.host}:{self.poller.port}\r\n"
            writer.write(request.encode("ascii") + b"Content-Length: 0\r\n\r\n")
            try:
                await writer.drain()
            except ConnectionError:
                pass
        self.close()

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.poller.writer, self.sender.writer) if w is not None]

    def close(self) -> None:
        self.closed = True
        if self.sending is not None:
            self.sending.cancel()
        self.poller.close()
        self.sender.close()


# --- the live-data benchmark's xhr-polling clients ------------------------------------

XHR_KINDS = ("xhr-ddp", "xhr-floor")


class XhrLiveClient:
    """An xhr-polling client of the latency benchmark: `xhr-ddp` subscribes to AllTicks, `xhr-floor` opens."""

    def __init__(self, kind: str, host: str, port: int, window: Window):
        if kind not in XHR_KINDS:
            raise ValueError(f"unknown xhr client kind {kind!r}")
        self.kind = kind
        self.session = XhrPolling(host, port)
        self.window = window
        self.received = 0
        self.newest = 0.0
        self.live = False
        self.ended: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.session.connect_tcp()
        await self.session.open()
        if self.kind == "xhr-ddp":
            client = DDPClient(self.session)
            await client.connect()
            await client.subscribe("s", "AllTicks", [])
            now = time.time()
            while self.session.inbox:  # what came after `ready` in the same poll
                self._samples(SENT_AT, self.session.inbox.popleft().encode("utf-8"), now)
        self.live = True

    async def run(self) -> None:
        """Poll again as soon as a poll is answered; a sample from each `sent_at` in the window."""
        try:
            while True:
                body, now = await self.session.poll_raw()
                if body.startswith(b"a"):
                    self._samples(SOCKJS_SENT_AT, body, now)
                elif body.startswith(b"c"):
                    raise ConnectionEnded(f"closed by the server: {body[:100].decode('utf-8', 'replace')}")
                elif body != b"h\n":
                    raise ConnectionEnded(f"unexpected poll answer {body[:100]!r}")
        except (ConnectionEnded, OSError) as exc:
            self.ended = str(exc)
        finally:
            self.live = False

    def _samples(self, pattern: Any, text: bytes, now: float) -> None:
        window = self.window
        for found in pattern.finditer(text):
            sent_at = float(found.group(1))
            if window.start <= sent_at < window.end:
                window.latencies.append(now - sent_at)
                window.last_receipt = now
                self.received += 1
                if sent_at > self.newest:
                    self.newest = sent_at

    async def leave(self) -> None:
        """End the session at once rather than when the server's disconnect delay runs out.

        A polling session outlives its connections (S-13): left as it is, it
        would go on being written to during the next rounds. dddp's is told
        `unsub` (no messages after that); the floor closes a session that sends it anything.
        """
        if self.live or self.task is not None:
            message = {"msg": "unsub", "id": "s"} if self.kind == "xhr-ddp" else {"msg": "bye"}
            self.session.send_text(json.dumps(message))
            try:
                await asyncio.wait_for(self.session.flushed(), 5.0)
            except (ConnectionEnded, OSError, asyncio.TimeoutError):
                pass
        if self.task is not None:
            self.task.cancel()
        self.session.close()


class XhrWorker:
    """One client process: `live_clients.Worker`'s commands, for xhr-polling clients."""

    def __init__(self, pipe: Connection):
        self.pipe = pipe
        self.window = Window()
        self.clients: list[XhrLiveClient] = []
        self.stopped = asyncio.Event()
        self.busy: asyncio.Task[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self.on_command)
        await self.stopped.wait()
        loop.remove_reader(self.pipe.fileno())

    def on_command(self) -> None:
        try:
            command = self.pipe.recv()
        except EOFError:
            self.stopped.set()  # the parent is gone
            return
        name, args = command[0], command[1:]
        if name == "open":
            self.busy = asyncio.create_task(self.open(*args))
        elif name == "window":
            self.window.start, self.window.end = args
            self.window.latencies = array("d")
            self.window.last_receipt = 0.0
            for client in self.clients:
                client.received = 0
                client.newest = 0.0
            self.pipe.send(None)
        elif name == "progress":
            self.pipe.send(self.progress())
        elif name == "collect":
            self.pipe.send(
                {
                    **self.progress(),
                    "latencies": self.window.latencies.tobytes(),
                    "last_receipt": self.window.last_receipt,
                }
            )
        elif name == "ready_time":
            self.pipe.send({"error": "not measured over xhr-polling"})
        elif name in ("drop", "close"):
            self.busy = asyncio.create_task(self.drop(stop=name == "close"))

    def progress(self) -> dict[str, Any]:
        live = [c for c in self.clients if c.live]
        return {
            "open": len(live),
            "received": sum(c.received for c in self.clients),
            "oldest_newest": min((c.newest for c in live), default=float("inf")),
            "dropped": dict(Counter(c.ended for c in self.clients if c.ended is not None)),
        }

    async def open(
        self, kind: str, host: str, port: int, count: int, concurrency: int, timeout: float
    ) -> None:
        started = time.monotonic()
        in_flight = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()
        opened = 0

        async def open_one() -> None:
            nonlocal opened
            client = XhrLiveClient(kind, host, port, self.window)
            async with in_flight:
                try:
                    await asyncio.wait_for(client.start(), timeout)
                except asyncio.TimeoutError:
                    failures["handshake timed out"] += 1
                    client.session.close()
                    return
                except (ConnectionEnded, OSError) as exc:
                    failures[str(exc)[:100]] += 1
                    client.session.close()
                    return
            opened += 1
            self.clients.append(client)
            client.task = asyncio.create_task(client.run())

        await asyncio.gather(*(open_one() for _ in range(count)))
        self.pipe.send({"opened": opened, "failures": dict(failures), "seconds": time.monotonic() - started})

    async def drop(self, stop: bool) -> None:
        clients, self.clients = self.clients, []
        await asyncio.gather(*(client.leave() for client in clients), return_exceptions=True)
        await asyncio.gather(*(c.task for c in clients if c.task is not None), return_exceptions=True)
        await asyncio.sleep(0.1)  # the closes go out
        self.pipe.send(None)
        if stop:
            self.stopped.set()


def xhr_worker_main(pipe: Connection) -> None:
    """An xhr-polling client process's entry point (multiprocessing, spawn), for `live_clients.Clients`."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def serve() -> None:
        await XhrWorker(pipe).run()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
