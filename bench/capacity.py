"""Capacity benchmark: N idle DDP sessions on one dddp server process.

    python bench/capacity.py --connections 19000 [--hold 20] [--json]

Starts the bookstore example's server (`python -m dddp`) on a free port, warms
it up, then has a few client worker processes open N connections, each
connected and subscribed to `AllBooks`, and hold them (answering pings). With
all N open it reports the server's memory per connection, its open files, its
PostgreSQL connections, and how fast a brand-new client gets connect + sub +
method answered. Then it closes everything and times a SIGTERM shutdown.

`--stage tcp|websocket|connect` stops each connection earlier, to split the
memory per connection into transport, WebSocket and DDP session parts.
Everything runs on 127.0.0.1 and every wait has a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from clientpool import STAGES, OpenOrder, raise_open_files_limit, worker_main
from wsclient import DDPClient, WebSocket

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXAMPLE = REPO / "example"
LISTENING = re.compile(r"listening on http://([^:/]+):(\d+)/")
HOST = "127.0.0.1"

# The targets for one server process.
TARGET_CONNECTIONS = 19_000
TARGET_KIB_PER_CONNECTION = 15.0
TARGET_ANSWER_SECONDS = 1.0

# The server's graceful shutdown: DDDP_SHUTDOWN_TIMEOUT (10 s) for methods,
# 2 s for sessions to close, 1 s to stop the WSGI server; plus a margin.
SHUTDOWN_LIMIT = 20.0
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the server process, seen from /proc -------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    pss_kib: int
    uss_kib: int  # pages only this process maps: what it would give back on exit


def memory(pid: int) -> Memory:
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return Memory(fields["Rss"], fields["Pss"], uss)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        after_name = stat.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5), utime and stime; the name, field 2, is cut off.
    return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_files_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return -1


class Server:
    """The dddp server under test; its log goes to a file, which nothing has to drain."""

    def __init__(self, app_name: str, log_level: str, traced: bool):
        self.log = tempfile.NamedTemporaryFile(prefix="dddp-capacity-", suffix=".log", delete=False)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PGAPPNAME": app_name}
        # libpq reads PGAPPNAME, so pg_stat_activity can tell this process's
        # connections from any other client of the same database.
        entry = ["-m", "dddp"]
        self.trace_prefix = ""
        if traced:
            entry = [str(BENCH / "traced_server.py")]
            self.trace_prefix = env["DDDP_TRACE_PREFIX"] = tempfile.mkdtemp(prefix="dddp-trace-") + "/trace"
        self._snapshots = 0
        self.process = subprocess.Popen(
            [
                sys.executable,
                *entry,
                "--settings",
                "example_project.settings",
                "--pythonpath",
                str(EXAMPLE),
                "--log-level",
                log_level,
                f"{HOST}:0",
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        self.port = 0

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_until_listening(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log_text())
            if match:
                self.port = int(match.group(2))
                return self.port
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.process.kill()
        raise SystemExit(
            f"the server did not start listening within {timeout:.0f}s:\n{self.log_text()[-3000:]}"
        )

    def snapshot(self, timeout: float = 300.0) -> Any:
        """A tracemalloc snapshot of the traced server (`traced_server.py` dumps it on SIGUSR1)."""
        import tracemalloc

        self._snapshots += 1
        path = Path(f"{self.trace_prefix}-{self._snapshots}.snap")
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"the traced server wrote no snapshot within {timeout:.0f}s")
            time.sleep(0.2)
        snapshot = tracemalloc.Snapshot.load(str(path))
        path.unlink()
        return snapshot

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM; (exit code or None if it had to be killed, seconds to exit)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.process.wait(SHUTDOWN_LIMIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        return code, time.monotonic() - started


def example_database() -> dict[str, Any]:
    """The example's DATABASES entry; with no DATABASE_URL this starts (or joins) the
    embedded PostgreSQL, which then stays up until this process exits too."""
    from dddp.database import database_settings

    return database_settings(EXAMPLE / "pgdata")


def database_connections(db: dict[str, Any], app_name: str) -> int | None:
    """How many PostgreSQL backends serve the process tagged `app_name`; None if unknown."""
    import psycopg2

    params = {"dbname": db["NAME"], "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"]}
    try:
        connection = psycopg2.connect(**params, port=db["PORT"] or None)
    except psycopg2.Error as exc:
        print(f"warning: cannot count PostgreSQL connections: {exc}", file=sys.stderr)
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app_name])
            row = cursor.fetchone()
    finally:
        connection.close()
    return int(row[0]) if row else None


def migrate() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"migrate failed ({done.returncode}):\n{done.stdout}{done.stderr}")


# --- a brand-new client's round trip -----------------------------------------------


async def round_trip(port: int) -> float:
    """Seconds for TCP + upgrade + DDP connect + sub + method result, on a fresh connection."""
    started = time.perf_counter()
    websocket = await WebSocket.open_tcp(HOST, port)
    try:
        await websocket.upgrade(HOST, port)
        client = DDPClient(websocket)
        await client.connect()
        await client.subscribe("probe", "AllBooks", [])
        await client.call("m1", "count_books", [])
        return time.perf_counter() - started
    finally:
        websocket.close()


def probe(port: int, times: int, timeout: float = 10.0) -> list[float]:
    """`times` sequential round trips; a failed or timed-out one counts as `inf`."""

    async def run() -> list[float]:
        seconds = []
        for _ in range(times):
            try:
                seconds.append(await asyncio.wait_for(round_trip(port), timeout))
            except Exception as exc:  # noqa: BLE001 - a failed probe is a figure, not a crash
                print(f"probe failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                seconds.append(float("inf"))
        return seconds

    return asyncio.run(run())


def warm_up(port: int, connections: int = 20) -> None:
    """Concurrent sessions calling a method, so lazy imports and worker DB connections are done."""

    async def one(number: int) -> None:
        websocket = await WebSocket.open_tcp(HOST, port)
        try:
            await websocket.upgrade(HOST, port)
            client = DDPClient(websocket)
            await client.connect()
            await client.subscribe("s1", "AllBooks", [])
            await client.call(f"m{number}", "count_books", [])
        finally:
            websocket.close()

    async def run() -> None:
        await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(connections))), 60)

    asyncio.run(run())


# --- where the memory goes (--traced) ---------------------------------------------

#: Frames that only say "something allocated": attribution skips past them.
_PLUMBING = ("/tracemalloc.py", "/traceback.py", "<frozen ", "/linecache.py")


def allocation_sites(before: Any, after: Any, connections: int, top: int = 15) -> list[dict[str, Any]]:
    """The source lines whose live allocations grew most, in bytes per connection, with callers."""
    sites = []
    for stat in after.compare_to(before, "traceback")[:top]:
        frames = [f for f in stat.traceback if not f.filename.startswith(_PLUMBING)] or list(stat.traceback)
        # tracemalloc lists the most recent call last; show innermost first.
        chain = [f"{_short(frame.filename)}:{frame.lineno}" for frame in reversed(frames)][:6]
        sites.append(
            {
                "bytes_per_connection": round(stat.size_diff / connections, 1),
                "blocks_per_connection": round(stat.count_diff / connections, 2),
                "where": chain,
            }
        )
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    sites.append({"bytes_per_connection": round(total / connections, 1), "where": ["(all traced)"]})
    return sites


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# --- client workers ------------------------------------------------------------


class Workers:
    """Client processes, each holding an equal share of the connections."""

    def __init__(self, count: int):
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for _ in range(count):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=worker_main, args=(child_end,), daemon=True)
            process.start()
            self.pipes.append(parent_end)
            self.processes.append(process)

    def ask(
        self, commands: list[tuple[Any, ...]], timeout: float, on_wait: Any = None
    ) -> list[dict[str, Any]]:
        """Send one command to each worker, collect the answers; `on_wait()` runs every 0.5 s."""
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
                answers[self.pipes.index(ready)] = ready.recv()
            if on_wait is not None:
                on_wait()
        return [answers[index] for index in range(len(self.pipes))]

    def stop(self) -> None:
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            merged[key] = merged.get(key, 0) + value
    return merged


# --- the run ---------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_open_files_limit()
    workers = Workers(args.workers)  # spawned first, while this process is small
    app_name = f"dddp-capacity-{uuid.uuid4().hex[:8]}"
    db = example_database()
    if not args.no_migrate:
        migrate()
    server = Server(app_name, args.server_log_level, args.traced)
    figures: dict[str, Any] = {"connections": args.connections, "stage": args.stage, "workers": args.workers}
    try:
        port = server.wait_until_listening()
        figures["server_open_files_limit"] = open_files_limit(server.pid)
        figures["client_open_files_limit"] = limit

        warm_up(port)
        probe(port, 3)
        time.sleep(1.0)  # let the warm-up sessions' greenlets finish and be freed
        baseline = memory(server.pid)
        baseline_snapshot = server.snapshot() if args.traced else None
        figures["baseline"] = asdict(baseline)
        figures["baseline_open_files"] = open_files(server.pid)
        figures["baseline_db_connections"] = database_connections(db, app_name)
        cpu_before = cpu_seconds(server.pid)

        peak_rss = [baseline.rss_kib]

        def sample() -> None:
            if server.process.poll() is None:
                peak_rss[0] = max(peak_rss[0], memory(server.pid).rss_kib)

        time_limit = args.ramp_limit or 60 + args.connections / 100
        orders = [
            (
                "open",
                OpenOrder(
                    HOST, port, args.stage, count, args.concurrency, args.handshake_timeout, time_limit
                ),
            )
            for count in split(args.connections, args.workers)
        ]
        started = time.monotonic()
        summaries = workers.ask(orders, time_limit + args.handshake_timeout + 30, on_wait=sample)
        ramp_seconds = time.monotonic() - started
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited during the ramp:\n{server.log_text()[-3000:]}")
        opened = sum(summary["opened"] for summary in summaries)
        figures["opened"] = opened
        figures["failed"] = args.connections - opened
        figures["failures"] = merge_counts([summary["failures"] for summary in summaries])
        figures["ramp_seconds"] = round(ramp_seconds, 2)
        figures["connect_rate_per_second"] = round(opened / ramp_seconds, 1)
        figures["slowest_handshake_seconds"] = round(max(s["slowest_handshake"] for s in summaries), 3)
        figures["ramp_cpu_seconds"] = round(cpu_seconds(server.pid) - cpu_before, 2)

        time.sleep(1.0)  # the last handshakes' transient greenlets end
        loaded = memory(server.pid)
        figures["loaded"] = asdict(loaded)
        figures["open_files"] = open_files(server.pid)
        figures["db_connections"] = database_connections(db, app_name)
        answers = probe(port, args.probes)
        figures["answer_seconds_median"] = round(statistics.median(answers), 4)
        figures["answer_seconds_max"] = round(max(answers), 4)
        if baseline_snapshot is not None and opened:
            figures["allocations_per_connection"] = allocation_sites(baseline_snapshot, server.snapshot(), opened)

        hold_cpu_before = cpu_seconds(server.pid)
        hold_until = time.monotonic() + args.hold
        while time.monotonic() < hold_until and server.process.poll() is None:
            sample()
            time.sleep(min(1.0, max(0.0, hold_until - time.monotonic())))
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited while holding:\n{server.log_text()[-3000:]}")
        held = memory(server.pid)
        figures["held"] = asdict(held)
        figures["hold_seconds"] = args.hold
        figures["hold_cpu_seconds"] = round(cpu_seconds(server.pid) - hold_cpu_before, 2)
        figures["peak_rss_kib"] = max(peak_rss[0], held.rss_kib)
        statuses = workers.ask([("close",)] * args.workers, 60)
        figures["still_open_after_hold"] = sum(status["open"] for status in statuses)
        figures["dropped"] = merge_counts([status["dropped"] for status in statuses])
        figures["pings_answered"] = sum(status["pings_answered"] for status in statuses)
        if opened:
            figures["kib_per_connection"] = {
                kind: round((getattr(held, f"{kind}_kib") - getattr(baseline, f"{kind}_kib")) / opened, 2)
                for kind in ("rss", "pss", "uss")
            }

        # The server notices the closes; wait until it has let go of the sockets.
        deadline = time.monotonic() + 60
        while open_files(server.pid) > figures["baseline_open_files"] + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        figures["open_files_after_close"] = open_files(server.pid)
        figures["after_close"] = asdict(memory(server.pid))
        figures["server_cpu_seconds"] = round(cpu_seconds(server.pid), 2)
        code, seconds = server.stop()
        figures["exit_code"] = code
        figures["shutdown_seconds"] = round(seconds, 2)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
        workers.stop()
    figures["server_log"] = server.log.name
    return figures


def verdicts(figures: dict[str, Any]) -> dict[str, bool]:
    per_connection = figures.get("kib_per_connection", {}).get("rss", float("inf"))
    return {
        f"held all {figures['connections']}": figures["still_open_after_hold"] == figures["connections"],
        f"<= {TARGET_KIB_PER_CONNECTION:g} KiB RSS per connection": per_connection
        <= TARGET_KIB_PER_CONNECTION,
        f"new client answered within {TARGET_ANSWER_SECONDS:g} s": figures["answer_seconds_max"]
        <= TARGET_ANSWER_SECONDS,
        "no database connection per client": figures["db_connections"] is not None
        and figures["db_connections"] <= (figures["baseline_db_connections"] or 0),
        "clean shutdown (exit 0)": figures["exit_code"] == 0,
    }


def table(figures: dict[str, Any]) -> str:
    mib = 1024
    base, loaded, held, closed = (figures[key] for key in ("baseline", "loaded", "held", "after_close"))
    per = figures.get("kib_per_connection", {})
    rows = [
        (
            "connections asked / opened / failed",
            f"{figures['connections']} / {figures['opened']} / {figures['failed']}",
        ),
        ("stage held", figures["stage"]),
        (
            "ramp: seconds, connections/s",
            f"{figures['ramp_seconds']} s, {figures['connect_rate_per_second']}/s",
        ),
        ("slowest handshake", f"{figures['slowest_handshake_seconds']} s"),
        (
            "server RSS: baseline / all open / after hold",
            f"{base['rss_kib'] / mib:.1f} / {loaded['rss_kib'] / mib:.1f} / {held['rss_kib'] / mib:.1f} MiB",
        ),
        (
            "server RSS after close, peak",
            f"{closed['rss_kib'] / mib:.1f} MiB, {figures['peak_rss_kib'] / mib:.1f} MiB",
        ),
        (
            "per connection: RSS / PSS / USS",
            f"{per.get('rss', '-')} / {per.get('pss', '-')} / {per.get('uss', '-')} KiB",
        ),
        (
            "server open files: baseline / all open / closed (limit)",
            f"{figures['baseline_open_files']} / {figures['open_files']}"
            f" / {figures['open_files_after_close']} ({figures['server_open_files_limit']})",
        ),
        (
            "server PostgreSQL connections: baseline / all open",
            f"{figures['baseline_db_connections']} / {figures['db_connections']}",
        ),
        (
            "new client connect+sub+method: median / max",
            f"{figures['answer_seconds_median'] * 1000:.1f} / {figures['answer_seconds_max'] * 1000:.1f} ms",
        ),
        (
            "still open after hold / dropped",
            f"{figures['still_open_after_hold']} / {figures['dropped'] or 0}",
        ),
        ("hold: seconds, pings answered", f"{figures['hold_seconds']} s, {figures['pings_answered']}"),
        (
            "server CPU: ramp / hold / total",
            f"{figures['ramp_cpu_seconds']} / {figures['hold_cpu_seconds']}"
            f" / {figures['server_cpu_seconds']} s",
        ),
        ("shutdown: exit code, seconds", f"{figures['exit_code']}, {figures['shutdown_seconds']} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for reason, count in sorted(figures["failures"].items(), key=lambda item: -item[1]):
        lines.append(f"  failed: {count} x {reason}")
    lines.append("")
    lines.extend(f"[{'ok' if passed else 'MISSED'}] {name}" for name, passed in verdicts(figures).items())
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--connections", type=int, default=TARGET_CONNECTIONS, help="connections to hold (19000)"
    )
    parser.add_argument(
        "--hold", type=float, default=20.0, help="seconds to hold them all open (20: past one ping)"
    )
    parser.add_argument(
        "--stage",
        choices=STAGES,
        default="sub",
        help="how far each connection goes: tcp, websocket (upgraded), connect (DDP), sub (default)",
    )
    parser.add_argument("--workers", type=int, default=3, help="client processes (3)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight per worker (100)")
    parser.add_argument("--handshake-timeout", type=float, default=15.0, help="seconds per connection (15)")
    parser.add_argument("--ramp-limit", type=float, default=0.0, help="seconds to open them all (60 + N/100)")
    parser.add_argument(
        "--probes", type=int, default=5, help="new-client round trips timed with all open (5)"
    )
    parser.add_argument(
        "--server-log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the server's --log-level (INFO, its default: a line per connection)",
    )
    parser.add_argument(
        "--traced",
        action="store_true",
        help="run the server under tracemalloc and list the lines holding the memory (slow; inflates RSS)",
    )
    parser.add_argument("--no-migrate", action="store_true", help="skip `manage.py migrate`")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    figures["verdicts"] = verdicts(figures)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
