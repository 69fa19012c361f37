"""Client worker processes that open the benchmark's connections and hold them.

Several workers share the client side so that no process needs more sockets
than its open-files limit, and so one client's CPU does not cap the connect
rate. The parent (`Workers`) drives each worker over a pipe with three commands:
`("open", OpenOrder)` -> what opened and what failed; `("status",)` -> how many
are still open; `("close",)` -> the status, after closing everything; then the
worker exits.

Transports (`OpenOrder.transport`): `websocket` (dddp's raw `/websocket`),
`sockjs` (the SockJS websocket, `/sockjs/<server>/<session>/websocket`) and
`xhr` (SockJS xhr-polling: two keep-alive connections per session, a long
poll always open); the SockJS ones are `sockjs_clients.py`'s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from sockjs_clients import SockJSWebSocket, XhrPolling
from wsclient import DDPClient, WebSocket

#: How far each held connection goes before it idles, from least to most
#: (`websocket`: the transport is open, the SockJS session too; xhr has no `tcp`).
STAGES = ("tcp", "websocket", "connect", "sub")
TRANSPORTS = ("websocket", "sockjs", "xhr")

Channel = WebSocket | SockJSWebSocket | XhrPolling


@dataclass(frozen=True)
class OpenOrder:
    host: str
    port: int
    stage: str
    count: int
    concurrency: int
    handshake_timeout: float
    time_limit: float
    transport: str = "websocket"


@dataclass
class OpenSummary:
    opened: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    slowest_handshake: float = 0.0


@dataclass
class Status:
    open: int
    dropped: dict[str, int]
    pings_answered: int
    polls_open: int = 0  # xhr-polling sessions whose long poll is waiting for an answer


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it); return it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def describe(exc: BaseException) -> str:
    """A short failure category, so 19,000 failures print as a few lines."""
    if isinstance(exc, asyncio.TimeoutError):
        return "handshake timed out"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} errno {exc.errno}"
    return f"{type(exc).__name__}: {str(exc)[:80]}"


async def open_channel(transport: str, host: str, port: int, stage: str = "sub") -> Channel:
    """A transport's connection(s), opened as far as `stage` asks: TCP only, or the session too."""
    channel: Channel
    if transport == "xhr":
        if stage == "tcp":
            raise ValueError("xhr-polling has no `tcp` stage: its first request opens the session")
        channel = XhrPolling(host, port)
        try:
            await channel.connect_tcp()
            await channel.open()
        except BaseException:
            channel.close()
            raise
        return channel
    channel = await (SockJSWebSocket if transport == "sockjs" else WebSocket).open_tcp(host, port)
    if stage != "tcp":
        try:
            await channel.upgrade(host, port)
        except BaseException:
            channel.close()
            raise
    return channel


async def handshake(order: OpenOrder, number: int) -> tuple[Channel, DDPClient | None]:
    """Open one connection up to `order.stage`; the socket is closed if anything fails."""
    channel = await open_channel(order.transport, order.host, order.port, order.stage)
    try:
        if order.stage == "tcp":
            return channel, None
        client = DDPClient(channel)
        if order.stage != "websocket":
            await client.connect()
        if order.stage == "sub":
            await client.subscribe(f"s{number}", "AllBooks", [])
        return channel, client
    except BaseException:
        channel.close()
        raise


class Holder:
    """The connections one worker holds, each with a task that reads (and answers pings)."""

    def __init__(self) -> None:
        self.held: list[tuple[Channel, DDPClient | None, asyncio.Task[str]]] = []
        self.dropped: Counter[str] = Counter()
        self.closing = False

    async def open(self, order: OpenOrder) -> OpenSummary:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + order.time_limit
        # A bounded number in flight: an unbounded burst overflows the server's
        # listen backlog, and SYN retries then show up as multi-second handshakes.
        in_flight = asyncio.Semaphore(order.concurrency)
        failures: Counter[str] = Counter()
        summary = OpenSummary()

        async def open_one(number: int) -> None:
            async with in_flight:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    failures["not tried: ramp time limit reached"] += 1
                    return
                began = loop.time()
                try:
                    websocket, client = await asyncio.wait_for(
                        handshake(order, number), min(order.handshake_timeout, remaining)
                    )
                except Exception as exc:  # noqa: BLE001 - every failure is counted, by kind
                    failures[describe(exc)] += 1
                    return
                summary.slowest_handshake = max(summary.slowest_handshake, loop.time() - began)
                self.hold(websocket, client)

        await asyncio.gather(*(open_one(number) for number in range(order.count)))
        summary.opened = order.count - sum(failures.values())
        summary.failures = dict(failures)
        summary.seconds = loop.time() - started
        return summary

    def hold(self, channel: Channel, client: DDPClient | None) -> None:
        task = asyncio.create_task(client.idle() if client else self._idle_tcp(channel))
        task.add_done_callback(self._ended)
        self.held.append((channel, client, task))

    @staticmethod
    async def _idle_tcp(channel: Channel) -> str:
        assert not isinstance(channel, XhrPolling)
        try:
            await channel.reader.read()
        except ConnectionError as exc:
            return f"connection lost: {type(exc).__name__}"
        return "closed by the server"

    def _ended(self, task: asyncio.Task[str]) -> None:
        if self.closing or task.cancelled():
            return
        self.dropped[task.result()] += 1

    def status(self) -> Status:
        still_open = sum(1 for _ws, _client, task in self.held if not task.done())
        pings = sum(client.pings_answered for _ws, client, _task in self.held if client)
        polls = sum(
            1 for channel, _client, task in self.held if isinstance(channel, XhrPolling) and channel.polling
        )
        return Status(still_open, dict(self.dropped), pings, polls)

    async def close(self) -> None:
        self.closing = True
        for channel, _client, task in self.held:
            task.cancel()
            channel.close()
        await asyncio.gather(*(task for _ws, _client, task in self.held), return_exceptions=True)
        # Let the transports flush their close frames before the process exits.
        writers = [writer for channel, _client, _task in self.held for writer in channel.writers()]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(not writer.transport.is_closing() for writer in writers):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)


async def serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    holder = Holder()
    while True:
        # The pipe is blocking; a thread waits on it so that the event loop
        # goes on answering the server's pings meanwhile.
        command: tuple[Any, ...] = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "open":
            pipe.send(asdict(await holder.open(command[1])))
        elif command[0] == "status":
            pipe.send(asdict(holder.status()))
        elif command[0] == "close":
            status = holder.status()
            await holder.close()
            pipe.send(asdict(status))
            return


def worker_main(pipe: Connection) -> None:
    """A worker process's entry point."""
    raise_open_files_limit()
    try:
        asyncio.run(serve(pipe))
    except (EOFError, KeyboardInterrupt):
        pass  # the parent is gone or interrupted: just exit


class Workers:
    """The parent's side: client processes, each holding an equal share of the connections."""

    def __init__(self, count: int):
        # spawn, not fork: a fresh interpreter, whatever the parent has imported or started.
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for _ in range(count):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=worker_main, args=(child_end,), daemon=True)
            process.start()
            self.pipes.append(parent_end)
            self.processes.append(process)

    def open(self, order: OpenOrder, timeout: float, on_wait: Callable[[], None]) -> list[dict[str, Any]]:
        """Each worker opens its share of `order.count`."""
        shares = [
            order.count // len(self.pipes) + (i < order.count % len(self.pipes))
            for i in range(len(self.pipes))
        ]
        commands = [("open", OpenOrder(**{**asdict(order), "count": share})) for share in shares]
        return self._ask(commands, timeout, on_wait)

    def close(self, timeout: float) -> list[dict[str, Any]]:
        """Each worker's status just before it closes its connections and exits."""
        return self._ask([("close",)] * len(self.pipes), timeout, None)

    def _ask(
        self, commands: list[tuple[Any, ...]], timeout: float, on_wait: Callable[[], None] | None
    ) -> list[dict[str, Any]]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(answers) < len(self.pipes):
            if time.monotonic() > deadline:
                raise SystemExit(f"client workers did not answer {commands[0][0]!r} within {timeout:.0f}s")
            pending = [pipe for index, pipe in enumerate(self.pipes) if index not in answers]
            for ready in wait(pending, timeout=0.5):
                assert isinstance(ready, Connection)
                try:
                    answers[self.pipes.index(ready)] = ready.recv()
                except EOFError:
                    raise SystemExit("a client worker died; see its traceback above") from None
            if on_wait is not None:
                on_wait()
        return [answers[index] for index in range(len(self.pipes))]

    def stop(self) -> None:
        for pipe in self.pipes:
            pipe.close()  # a worker still waiting for a command gets EOFError and exits
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()


def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    merged: Counter[str] = Counter()
    for count in counts:
        merged.update(count)
    return dict(merged)
