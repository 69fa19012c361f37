"""The live-data benchmark's clients: processes that each hold a share of the WebSockets.

Each process runs one plain epoll loop over non-blocking sockets, not asyncio:
on this two-core machine every message costs the kernel some 20 us on each
side of a loopback socket already, and asyncio's machinery per readable socket
(a handle, a transport, a protocol callback) would add as much again in the
process that must not be the bottleneck. The receipt time is read right after
`recv`, before anything is parsed.

Every message that carries `"sent_at":<float>` (a dddp `changed`, or the
floor's row as JSON) is a sample: receipt time minus `sent_at`, kept when
`sent_at` falls in the window the parent set (so warm-up writes, and the
initial `added` messages, are left out). Until a client is live (upgraded,
and for DDP subscribed) it parses frames; once live it only scans the bytes
for `"sent_at":<number>` with one regular expression. The scan is safe here:
every message is small JSON holding `sent_at` at most once, the servers do
not fragment messages, and heartbeats are off.

A DDP client may log in with a resume token first (`grow(..., resumes=[...])`):
it calls `login` after `connected` and subscribes once the result is in.

Client kinds: `ddp` (dddp's raw `/websocket`), `floor` (live_floor.js's plain
WebSocket), and over the SockJS websocket transport (`/sockjs/<server>/<session>/websocket`,
docs/ddp-protocol.md S-10, S-11) `sockjs-ddp` (dddp) and `sockjs-floor`
(sockjs_floor.js). A SockJS client waits for the `o` frame, sends each DDP
message as `["<json text>"]`, and reads `a[...]` frames of JSON-encoded
texts; once live it scans for the escaped `\"sent_at\":<number>` instead.
(xhr-polling clients run in `sockjs_clients.py`'s asyncio workers, which
answer the same commands.)

The parent (`live.py` or `sockjs.py`, through `Clients`) drives each process
over a pipe: `("open", ...)`, `("window", t0, t1)`, `("progress",)`,
`("collect",)`, `("ready_time", ...)`, `("drop",)` (close every client, keep
the process), `("close",)`; each gets one reply.
"""

from __future__ import annotations

import base64
import errno
import json
import multiprocessing
import os
import random
import re
import resource
import select
import socket
import string
import struct
import time
from array import array
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from wsclient import frame_header

SENT_AT = re.compile(rb'"sent_at":(-?[0-9][0-9.eE+-]*)[,}]')
#: The same inside a SockJS `a[...]` frame, where each message is a JSON string: `\"sent_at\":`.
SOCKJS_SENT_AT = re.compile(rb'\\"sent_at\\":(-?[0-9][0-9.eE+-]*)[,}]')
KINDS = ("ddp", "floor", "sockjs-ddp", "sockjs-floor")
#: Long enough to hold `"sent_at":<number>` cut by the end of a read.
SCAN_TAIL = 48
OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x1, 0x8, 0x9, 0xA
READ_SIZE = 65536


class Window:
    """Which `sent_at` values count, and the samples taken so far (one per process)."""

    def __init__(self) -> None:
        self.start = self.end = float("inf")
        self.latencies = array("d")
        self.last_receipt = 0.0


def sockjs_path(prefix: str = "/sockjs", transport: str = "websocket") -> str:
    """A fresh SockJS session URL path: a random 3-digit server id and 8-character session id (S-15)."""
    server = f"{random.randrange(1000):03d}"
    session = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    return f"{prefix}/{server}/{session}/{transport}"


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked with a zero key (RFC 6455 asks for a mask, not a secret one)."""
    return frame_header(opcode, len(payload)) + b"\0\0\0\0" + payload  # XOR with zeros leaves it as it is


class Client:
    """One WebSocket, of one of KINDS: a floor one is live once open; a DDP one connects, then subs.

    States: connecting -> upgrade -> (open ->) (connect -> sub ->) live, or ended.
    `on_done(client)` is called once, when it is live or has ended before that.
    """

    def __init__(
        self,
        kind: str,
        address: tuple[str, int],
        window: Window,
        publication: str,
        params: list[Any],
        on_done: Callable[[Client], None],
        resume: str | None = None,
        hold: bool = False,
    ) -> None:
        """`resume`: a login token, to log in with (DDP kinds) before subscribing; `hold`:
        once connected (and logged in), wait in state "held" for `subscribe`."""
        if kind not in KINDS:
            raise ValueError(f"unknown client kind {kind!r}")
        self.kind = kind
        self.sockjs = kind.startswith("sockjs-")
        self.ddp = kind in ("ddp", "sockjs-ddp")
        self.pattern = SOCKJS_SENT_AT if self.sockjs else SENT_AT
        self.address = address
        self.window = window
        self.publication = publication
        self.params = params
        self.resume = resume
        self.hold = hold
        self.on_done: Callable[[Client], None] | None = on_done
        self.state = "connecting"
        self.buffer = bytearray()  # until live: bytes not yet parsed into frames
        self.tail = b""  # once live: the bytes after the last sample, that may begin the next
        self.received = 0  # samples in the window
        self.newest = 0.0  # the latest `sent_at` received in the window
        self.added = 0  # `added` messages before `ready`
        self.sub_sent = self.ready_at = 0.0
        self.ended: str | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fd = self.sock.fileno()

    def start(self) -> None:
        code = self.sock.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS):
            self._end(f"connect: {os.strerror(code)}")

    # --- events from the loop ---------------------------------------------------------

    def writable(self) -> None:
        """The non-blocking connect finished: send the HTTP upgrade."""
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._end(f"connect: {os.strerror(code)}")
            return
        self.state = "upgrade"
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        path = sockjs_path() if self.sockjs else "/websocket" if self.ddp else "/"
        host, port = self.address
        self._write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode("ascii")
        )

    def readable(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(f"connection lost: {type(exc).__name__}")
            return
        now = time.time()
        if not data:
            self._end("closed by the server")
        elif self.state == "live":
            self._scan(data, now)
        else:
            self._parse(data, now)

    # --- inside -----------------------------------------------------------------------

    def _scan(self, data: bytes, now: float) -> None:
        """Take a sample from each `"sent_at":<number>` read (see the module docstring)."""
        text = self.tail + data if self.tail else data
        scanned = self._samples(self.pattern, text, now)
        self.tail = text[max(scanned, len(text) - SCAN_TAIL) :]

    def _samples(self, pattern: re.Pattern[bytes], text: bytes, now: float) -> int:
        """A sample of each `sent_at` in the window that `pattern` finds; returns where the last ended."""
        window = self.window
        start, end, latencies = window.start, window.end, window.latencies
        scanned = 0
        for found in pattern.finditer(text):
            sent_at = float(found.group(1))
            if start <= sent_at < end:
                latencies.append(now - sent_at)
                self.received += 1
                window.last_receipt = now
                if sent_at > self.newest:
                    self.newest = sent_at
            scanned = found.end()
        return scanned

    def _parse(self, data: bytes, now: float) -> None:
        buffer = self.buffer
        buffer += data
        if self.state == "upgrade" and not self._upgraded():
            return
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            opcode = buffer[pos] & 0x0F
            payload = bytes(buffer[pos + head : pos + head + length])
            pos += head + length
            if opcode == OPCODE_TEXT:
                self._text(payload, now)
            elif opcode == OPCODE_PING:
                self._write(client_frame(OPCODE_PONG, payload))
            elif opcode == OPCODE_CLOSE:
                self._end("closed by the server")
            if self.state in ("live", "ended"):
                self.tail = bytes(buffer[pos:])  # once live the rest is scanned, not parsed
                buffer.clear()
                return
        del buffer[:pos]

    def _upgraded(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
        del self.buffer[: end + 4]
        if b" 101 " not in status + b" ":
            self._end(f"upgrade refused: {status.decode('latin-1')}")
            return False
        if self.sockjs:
            self.state = "open"  # until the `o` frame
        else:
            self._opened()
        return True

    def _opened(self) -> None:
        if self.ddp:
            self.state = "connect"
            self._send({"msg": "connect", "version": "1", "support": ["1"]})
        else:
            self._go_live()

    def _text(self, payload: bytes, now: float) -> None:
        if not self.sockjs:
            self._ddp_text(payload, now)
        elif payload == b"o" and self.state == "open":
            self._opened()
        elif payload.startswith(b"a"):
            texts = [text.encode("utf-8") for text in json.loads(payload[1:])]
            for number, text in enumerate(texts):
                if self.state == "live":  # what came after `ready` in the same frame: samples
                    for rest in texts[number:]:
                        self._samples(SENT_AT, rest, now)
                    return
                self._ddp_text(text, now)
                if self.state == "ended":
                    return
        elif payload.startswith(b"c"):
            self._end(f"closed by the server: {payload[:100].decode('utf-8', 'replace')}")
        elif payload != b"h":
            self._end(f"unexpected SockJS frame {payload[:100]!r}")

    def _ddp_text(self, payload: bytes, now: float) -> None:
        if payload.startswith(b'{"msg":"added"'):
            self.added += 1  # not parsed: 10,000 json.loads would count against `ready`
            return
        message = json.loads(payload)
        kind = message.get("msg")
        if kind == "connected" and self.resume is not None:
            self.state = "login"
            self._send(
                {"msg": "method", "id": "login", "method": "login", "params": [{"resume": self.resume}]}
            )
        elif kind == "connected" or (
            kind == "result" and message.get("id") == "login" and "result" in message
        ):
            if self.hold:
                self.state = "held"
                self._done()
            else:
                self._subscribe()
        elif kind == "ready":
            self.ready_at = now
            self._go_live()
        elif kind in ("nosub", "error", "failed", "result"):  # a result here: the login's error
            self._end(f"the server answered {payload[:200]!r}")

    def subscribe(self, on_done: Callable[[Client], None]) -> None:
        """Subscribe a held client; `on_done(client)` once it is live or has ended."""
        self.on_done = on_done
        self._subscribe()

    def _subscribe(self) -> None:
        self.state = "sub"
        self.sub_sent = time.time()
        self._send({"msg": "sub", "id": "s", "name": self.publication, "params": self.params})

    def _go_live(self) -> None:
        self.state = "live"
        self._done()

    def _done(self) -> None:
        if self.on_done is not None:
            on_done, self.on_done = self.on_done, None
            on_done(self)

    def _send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, separators=(",", ":"))
        if self.sockjs:
            text = json.dumps([text], separators=(",", ":"))  # S-11: a JSON array of message texts
        self._write(client_frame(OPCODE_TEXT, text.encode("utf-8")))

    def _write(self, data: bytes) -> None:
        """Client writes are a few small frames: a fresh socket's buffer always takes them whole."""
        try:
            if self.sock.send(data) != len(data):
                self._end("the socket did not take a small write whole")
        except OSError as exc:
            self._end(f"send: {type(exc).__name__}")

    def _end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self.state = "ended"
        self._done()

    def close(self) -> None:
        """A close frame if the socket is up, then close it."""
        if self.state not in ("connecting", "ended"):
            try:
                self.sock.send(client_frame(OPCODE_CLOSE, struct.pack("!H", 1000)))
            except OSError:
                pass
        self.ended = self.ended or "closed by the benchmark"
        self.state = "ended"
        self.sock.close()


class Worker:
    """One client process: its clients, its epoll loop, its pipe to the parent."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.poll = select.epoll()
        self.poll.register(pipe.fileno(), select.EPOLLIN)
        self.window = Window()
        self.sockets: dict[int, Client] = {}
        self.clients: list[Client] = []  # live ones, and those that ended after being live
        self.running = True
        self.opening: dict[Client, float] = {}  # -> deadline
        self.to_open = 0
        self.open_order: dict[str, Any] = {}
        self.open_result: dict[str, Any] = {}

    def run(self) -> None:
        while self.running:
            for fd, events in self.poll.poll(0.05):
                if fd == self.pipe.fileno():
                    self.command(self.pipe.recv())
                    continue
                client = self.sockets.get(fd)
                if client is None:
                    continue
                if client.state == "connecting" and events & select.EPOLLOUT:
                    self.poll.modify(fd, select.EPOLLIN)
                    client.writable()
                elif events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    client.readable()
                if client.state == "ended":
                    self.forget(client)
            if self.opening:
                self.expire_opens()

    def add(self, client: Client, deadline: float) -> None:
        """Watch a new client until `deadline` (monotonic) for its handshake, and connect it."""
        self.opening[client] = deadline
        self.sockets[client.fd] = client
        self.poll.register(client.fd, select.EPOLLOUT)  # writable: the connect is done
        client.start()
        if client.state == "ended":
            self.forget(client)

    def forget(self, client: Client) -> None:
        if self.sockets.get(client.fd) is client:
            del self.sockets[client.fd]
            try:
                self.poll.unregister(client.fd)
            except OSError:  # the socket was already closed: epoll dropped it itself
                pass
        client.close()

    # --- opening ----------------------------------------------------------------------

    def start_open(
        self,
        kind: str,
        host: str,
        port: int,
        count: int,
        concurrency: int,
        timeout: float,
        publication: str = "AllTicks",
        resumes: list[str] | None = None,
        params: list[list[Any]] | None = None,
        hold: bool = False,
    ) -> None:
        """Open `count` clients, `concurrency` at a time (a burst overflows the listen backlog);
        with `resumes`, each logs in with the next token of it before subscribing; with
        `params`, each subscribes with the next parameters of it; with `hold`, each waits,
        connected, for `subscribe_held`."""
        self.open_order = {
            "kind": kind,
            "address": (host, port),
            "timeout": timeout,
            "publication": publication,
            "resumes": list(resumes or []),
            "params": list(params or []),
            "hold": hold,
        }
        self.open_result = {"opened": 0, "failures": Counter[str](), "started": time.monotonic()}
        self.to_open = count
        for _ in range(min(concurrency, count)):
            self.open_next()
        self.finish_open_if_done()

    def open_next(self) -> None:
        self.to_open -= 1
        order = self.open_order
        resume = order["resumes"].pop() if order["resumes"] else None
        params = order["params"].pop() if order["params"] else []
        client = Client(
            order["kind"],
            order["address"],
            self.window,
            order["publication"],
            params,
            self.opened,
            resume,
            order["hold"],
        )
        self.add(client, time.monotonic() + order["timeout"])

    def opened(self, client: Client) -> None:
        self.opening.pop(client, None)
        if client.state in ("live", "held"):
            self.open_result["opened"] += 1
            self.clients.append(client)
        else:
            self.open_result["failures"][client.ended or "?"] += 1
        if self.to_open > 0:
            self.open_next()
        self.finish_open_if_done()

    def expire_opens(self) -> None:
        now = time.monotonic()
        for client, deadline in list(self.opening.items()):
            if now > deadline:
                client._end("handshake timed out")
                self.forget(client)

    def finish_open_if_done(self) -> None:
        if self.to_open > 0 or self.opening or not self.open_result:
            return
        result, self.open_result = self.open_result, {}
        self.pipe.send(
            {
                "opened": result["opened"],
                "failures": dict(result["failures"]),
                "seconds": time.monotonic() - result["started"],
            }
        )

    # --- the parent's commands ----------------------------------------------------------

    def command(self, command: tuple[Any, ...]) -> None:
        name, args = command[0], command[1:]
        if name == "open":
            self.start_open(*args)
        elif name == "window":
            self.set_window(*args)
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
            self.ready_time(*args)
        elif name == "subscribe":
            self.subscribe_held()
        elif name == "drop":
            self.drop()
            self.pipe.send(None)
        elif name == "close":
            for client in list(self.sockets.values()):
                client.close()
            self.pipe.send(None)
            self.running = False

    def drop(self) -> None:
        """Close every client (the server ends their sessions); the process stays for the next ones."""
        for client in list(self.sockets.values()):
            self.forget(client)
        self.clients = []
        self.opening.clear()

    def set_window(self, start: float, end: float) -> None:
        self.window.start, self.window.end = start, end
        self.window.latencies = array("d")
        self.window.last_receipt = 0.0
        for client in self.clients:
            client.received = 0
            client.newest = 0.0

    def progress(self) -> dict[str, Any]:
        live = [c for c in self.clients if c.state == "live"]
        return {
            "open": len(live),
            "received": sum(c.received for c in self.clients),
            # dddp may merge several changes of a row into one message, but the
            # row's last state always comes: a client is up to date once it has
            # the newest write.
            "oldest_newest": min((c.newest for c in live), default=float("inf")),
            "dropped": dict(Counter(c.ended for c in self.clients if c.ended is not None)),
        }

    def subscribe_held(self) -> None:
        """Every held client subscribes at once; the reply comes once each is live or ended."""
        held = [client for client in self.clients if client.state == "held"]
        result: dict[str, Any] = {"subscribed": 0, "failures": Counter[str](), "waiting": len(held)}
        started = time.monotonic()

        def done(client: Client) -> None:
            result["waiting"] -= 1
            if client.state == "live":
                result["subscribed"] += 1
            else:
                result["failures"][client.ended or "?"] += 1
            if result["waiting"] == 0:
                reply = {"subscribed": result["subscribed"], "failures": dict(result["failures"])}
                self.pipe.send({**reply, "seconds": time.monotonic() - started})

        for client in held:
            client.subscribe(done)
        if not held:
            self.pipe.send({"subscribed": 0, "failures": {}, "seconds": 0.0})

    def ready_time(self, host: str, port: int, run: int, timeout: float) -> None:
        """A fresh client subscribes to AllBulks: seconds from `sub` sent to `ready` received."""
        deadline = time.monotonic() + timeout

        def done(client: Client) -> None:
            reply: dict[str, Any] = {"error": client.ended}
            if client.state == "live":
                reply = {"seconds": client.ready_at - client.sub_sent, "added": client.added}
            self.opening.pop(client, None)
            self.forget(client)
            self.pipe.send(reply)

        self.add(Client("ddp", (host, port), Window(), "AllBulks", [run], done), deadline)


def worker_main(pipe: Connection) -> None:
    """A client process's entry point (multiprocessing, spawn)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        Worker(pipe).run()
    except (EOFError, KeyboardInterrupt):
        pass  # the parent is gone or interrupted


class Clients:
    """The parent's side: worker processes, each with an equal share of the clients."""

    def __init__(self, processes: int, main: Callable[[Connection], None] | None = None):
        """`main`: the processes' entry point (default this module's `worker_main`)."""
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, whatever the parent holds
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for _ in range(processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=main or worker_main, args=(child_end,), daemon=True)
            process.start()
            child_end.close()
            self.pipes.append(parent_end)
            self.processes.append(process)
        self.count = 0

    def _all(self, *command: Any, timeout: float = 120.0) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        replies = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise TimeoutError(f"a client process did not answer {command[0]!r} within {timeout:.0f}s")
            replies.append(pipe.recv())
        return replies

    def grow(
        self,
        kind: str,
        host: str,
        port: int,
        total: int,
        concurrency: int = 50,
        publication: str = "AllTicks",
        resumes: list[str] | None = None,
        params: list[list[Any]] | None = None,
        hold: bool = False,
    ) -> dict[str, Any]:
        """Open clients until `total` are held, spread evenly over the processes; with
        `resumes` (one login token per new client), each logs in before subscribing; with
        `params` (one list per new client), each subscribes with its own; with `hold`,
        each waits, connected, for `subscribe_held`."""
        more = total - self.count
        shares = [more // len(self.pipes) + (i < more % len(self.pipes)) for i in range(len(self.pipes))]
        tokens = list(resumes or [])
        each_params = list(params or [])
        for pipe, share in zip(self.pipes, shares, strict=True):
            mine, tokens = tokens[:share], tokens[share:]
            my_params, each_params = each_params[:share], each_params[share:]
            per_pipe = max(1, concurrency // len(self.pipes))
            extra: tuple[Any, ...] = ()  # xhr workers: none
            if resumes or publication != "AllTicks" or params or hold:
                extra = (publication, mine, my_params, hold)
            pipe.send(("open", kind, host, port, share, per_pipe, 30.0, *extra))
        opened, failures, seconds = 0, Counter[str](), 0.0
        for pipe in self.pipes:
            if not pipe.poll(600):
                raise TimeoutError("client processes took over 600s to open their connections")
            reply = pipe.recv()
            opened += reply["opened"]
            failures.update(reply["failures"])
            seconds = max(seconds, reply["seconds"])
        self.count += opened
        return {"opened": opened, "failures": dict(failures), "seconds": seconds}

    def subscribe_held(self, timeout: float = 600.0) -> dict[str, Any]:
        """Every held client subscribes at once: how many are live, the failures, and the
        seconds from the first sub sent to the last `ready` received."""
        started = time.monotonic()
        replies = self._all("subscribe", timeout=timeout)
        failures = sum((Counter(r["failures"]) for r in replies), Counter[str]())
        return {
            "subscribed": sum(r["subscribed"] for r in replies),
            "failures": dict(failures),
            "seconds": time.monotonic() - started,
        }

    def window(self, start: float, end: float) -> None:
        self._all("window", start, end)

    def progress(self) -> dict[str, Any]:
        replies = self._all("progress")
        return {
            "open": sum(r["open"] for r in replies),
            "received": sum(r["received"] for r in replies),
            "oldest_newest": min(r["oldest_newest"] for r in replies),
        }

    def collect(self) -> tuple[array[float], dict[str, Any]]:
        replies = self._all("collect")
        latencies = array("d")
        for reply in replies:
            latencies.frombytes(reply.pop("latencies"))
        summary = {
            "open": sum(r["open"] for r in replies),
            "received": sum(r["received"] for r in replies),
            "last_receipt": max(r["last_receipt"] for r in replies),
            "dropped": dict(sum((Counter(r["dropped"]) for r in replies), Counter())),
        }
        return latencies, summary

    def ready_time(self, host: str, port: int, run: int, timeout: float = 120.0) -> dict[str, Any]:
        pipe = self.pipes[0]
        pipe.send(("ready_time", host, port, run, timeout))
        if not pipe.poll(timeout + 10):
            raise TimeoutError(f"no ready within {timeout:.0f}s")
        reply: dict[str, Any] = pipe.recv()
        if "error" in reply:
            raise ConnectionError(f"the AllBulks subscription failed: {reply['error']}")
        return reply

    def drop(self, timeout: float = 120.0) -> None:
        """Close every client; the processes stay, for `grow` to open others."""
        self._all("drop", timeout=timeout)
        self.count = 0

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close",))
            except OSError:
                continue
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            try:
                if pipe.poll(10):
                    pipe.recv()
            except (OSError, EOFError):
                pass
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        self.count = 0
