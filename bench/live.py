"""Live-data speed: dddp against a floor, side by side in one run, on one machine and database.

    python bench/live.py [--quick] [--json] [--client-processes N] [--atomic]
                         [--only dddp|floor] [--server-script PATH]

The floor (`live_floor.js`) is the least a server can do: Node's `ws` and `pg`,
LISTENing to a trigger's NOTIFY and writing each row's JSON to every socket.
The workload is one table and one publication of all its rows; a writer
process (`live_writer.py`) updates rows through the Django ORM with its
`time.time()` in `sent_at`, and client processes (`live_clients.py`) record
receipt time minus `sent_at`. dddp's writer saves `Tick` (a dddp Collection:
post_save NOTIFYs); the floor's saves `FloorTick`, the same table with the
floor's trigger and no dddp receiver, so neither pays for the other.

Figures, each with the floor's and the target ratio:
- commit-to-client latency p50/p99 at 50 writes/s, with 1, 100, 1,000 clients
  (target: dddp's p99 <= 1.5x the floor's), and at 10 writes/s with 1,000
  clients, a point where the floor itself does not saturate two cores;
- writes/s of one writer saving as fast as it can, with 0, 20, 100, 1,000
  clients (target: >= 0.8x the floor's), with how far the clients lag;
- seconds from `sub` to `ready` for a 10,000-row publication, against fetching
  the rows through Django and encoding each as a DDP `added` (target: <= 2x).

The database is $DATABASE_URL, else an embedded PostgreSQL in /tmp/dddp-live-pgdata.
Everything listens on 127.0.0.1; every wait is bounded; every process started
here is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from live_clients import Clients
from live_writer import FLOOR_CHANNEL, writer_main

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

LATENCY_TARGET = 1.5  # dddp p99 / floor p99, at most
THROUGHPUT_TARGET = 0.8  # dddp writes/s / floor writes/s, at least
READY_TARGET = 2.0  # dddp sub-to-ready / fetch-and-encode, at most
SPEC_RATE = 50.0  # writes/s of the spec's latency points
SATURATED_MS = 100.0  # a floor p50 above this: the machine, not the server, sets the pace


@dataclass(frozen=True)
class Plan:
    # (clients, writes/s): the spec's points, then one more where this two-core
    # machine is not saturated by the floor itself (50,000 messages/s are too many).
    latency_points: tuple[tuple[int, float], ...] = ((1, 50.0), (100, 50.0), (1000, 50.0), (1000, 10.0))
    throughput_clients: tuple[int, ...] = (0, 20, 100, 1000)
    latency_rounds: int = 2  # per server, alternating with the other server's
    latency_warmup: float = 1.0
    latency_seconds: float = 5.0  # per round
    flood_rounds: int = 3
    flood_warmup: float = 0.5
    flood_seconds: float = 3.0
    rows: int = 100  # rows of the published table (each client's initial `added`s)
    bulk_rows: int = 10_000
    ready_runs: int = 5
    latency_drain: float = 30.0  # seconds after the writer stops for clients to catch up
    flood_drain: float = 120.0


QUICK = Plan(
    latency_points=((1, 50.0), (100, 50.0)),
    throughput_clients=(0, 20, 100),
    latency_rounds=1,
    latency_seconds=3.0,
    flood_rounds=2,
    flood_seconds=2.0,
    ready_runs=3,
    flood_drain=30.0,
)


# --- processes ------------------------------------------------------------------------


class Server:
    """A server under test in its own process; its output goes to a log file."""

    def __init__(self, name: str, command: list[str], listening: str, env: dict[str, str]):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"live-{name}-", suffix=".log", delete=False)
        # Not the repository's root: `python -m` puts the working directory first
        # on sys.path, where it would shadow a dddp given in PYTHONPATH.
        self.process = subprocess.Popen(
            command, cwd=BENCH, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.port = self._wait_for_port(re.compile(listening))

    def _wait_for_port(self, pattern: re.Pattern[str], timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            found = pattern.search(self.log_text())
            if found:
                return int(found.group(1))
            time.sleep(0.1)
        code = self.process.poll()
        self.stop()
        why = f"exited with code {code}" if code is not None else f"did not listen within {timeout:.0f}s"
        raise SystemExit(f"the {self.name} server {why}:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (proc(5) stat fields 14 and 15)."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def start_dddp(env: dict[str, str], script: str | None = None) -> Server:
    entry = [script] if script else ["-m", "dddp"]
    command = [sys.executable, *entry, "--settings", "live_settings", "--pythonpath", str(BENCH)]
    command += ["--no-django", "--log-level", "INFO", "127.0.0.1:0"]
    return Server("dddp", command, r"listening on http://[^:/]+:(\d+)/", {**env, "PGAPPNAME": "live-dddp"})


def start_floor(env: dict[str, str]) -> Server:
    command = ["node", str(BENCH / "live_floor.js"), FLOOR_CHANNEL]
    return Server("floor", command, r"listening on (\d+)", {**env, "PGAPPNAME": "live-floor"})


class ChildProcess:
    """A spawned process running `target(pipe)`, which answers each command sent to it."""

    name = "the child process"
    stop_command = "stop"
    stop_timeout = 10.0

    def __init__(self, target: Callable[[Any], None], call_timeout: float = 600.0) -> None:
        self.call_timeout = call_timeout
        context = multiprocessing.get_context("spawn")
        self.pipe, child_end = context.Pipe()
        self.process = context.Process(target=target, args=(child_end,), daemon=True)
        self.process.start()
        child_end.close()

    def call(self, *command: Any, timeout: float | None = None) -> Any:
        timeout = self.call_timeout if timeout is None else timeout
        self.pipe.send(command)
        if not self.pipe.poll(timeout):
            raise TimeoutError(f"{self.name} did not finish {command[0]!r} within {timeout:.0f}s")
        return self.pipe.recv()

    def stop(self) -> None:
        try:
            self.pipe.send((self.stop_command,))
        except OSError:
            pass
        self.process.join(self.stop_timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class WriterProcess(ChildProcess):
    """The parent's side of `live_writer.py`."""

    name = "the writer"

    def __init__(self, target: Callable[[Any], None] = writer_main) -> None:
        super().__init__(target)


# --- measurements ---------------------------------------------------------------------


@dataclass
class Target:
    """One server under test, with its own clients and its own table."""

    kind: str  # "dddp" or "floor"
    server: Server
    clients: Clients

    @property
    def table(self) -> str:
        return "tick" if self.kind == "dddp" else "floor"

    @property
    def client_kind(self) -> str:
        return "ddp" if self.kind == "dddp" else "floor"


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return float("nan")
    return 1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def distribution(seconds: Any, prefix: str = "") -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        f"{prefix}p50_ms": percentile(ordered, 0.50),
        f"{prefix}p99_ms": percentile(ordered, 0.99),
        f"{prefix}max_ms": percentile(ordered, 1.0),
    }


def wait_for_clients(clients: Clients, last_write: float, deadline: float) -> bool:
    """Wait until every open client has the message of the last write; False at the deadline."""
    while time.time() < deadline:
        if clients.progress()["oldest_newest"] >= last_write:
            return True
        time.sleep(0.1)
    return False


def latency_round(
    target: Target, writer: WriterProcess, plan: Plan, rate: float, atomic: bool
) -> dict[str, Any]:
    """One paced run: the writer saves `rate` times a second; every client takes samples."""
    begin = time.time() + 0.3  # time for every client process to take the window
    start = begin + plan.latency_warmup
    end = start + plan.latency_seconds
    target.clients.window(start, end)
    cpu = target.server.cpu_seconds()
    writes, last, behind, durations = writer.call("paced", target.table, rate, begin, start, end, atomic)
    drained = wait_for_clients(target.clients, last, end + plan.latency_drain)
    latencies, summary = target.clients.collect()
    return {
        "writes": writes,
        "expected": writes * summary["open"],
        "latencies": latencies,
        "durations": durations,
        "behind": behind,
        "drained": drained,
        "cpu": (target.server.cpu_seconds() - cpu) / (time.time() - begin),
        "dropped": summary["dropped"],
    }


def flood_round(target: Target, writer: WriterProcess, plan: Plan, atomic: bool) -> dict[str, Any]:
    """One flood: the writer saves as fast as it can; the clients' lag is measured after it stops."""
    begin = time.time() + 0.3
    start = begin + plan.flood_warmup
    end = start + plan.flood_seconds
    clients = target.clients
    clients.window(start, end)
    cpu = target.server.cpu_seconds()
    writes, last = writer.call("flood", target.table, begin, start, end, atomic)
    cpu = target.server.cpu_seconds() - cpu
    at_end = clients.progress()["received"] if clients.count else 0
    drained = wait_for_clients(clients, last, end + plan.flood_drain) if clients.count else True
    latencies, summary = clients.collect()
    expected = writes * summary["open"]
    return {
        "writes": writes,
        "expected": expected,
        "latencies": latencies,
        # The share of the messages that had arrived when the writer stopped.
        "delivered_by_end": at_end / len(latencies) if latencies else float("nan"),
        # How long after the writer's last save its last message reached the last client.
        "lag_s": max(0.0, summary["last_receipt"] - end) if latencies else float("nan"),
        "drained": drained,
        "cpu": cpu / (end - begin),
        "dropped": summary["dropped"],
    }


def merge_latency(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = array("d")
    durations: list[float] = []
    for one in rounds:
        latencies.extend(one["latencies"])
        durations += one["durations"]
    return {
        **distribution(latencies),
        **distribution(durations, "save_"),
        "samples": len(latencies),
        "expected": sum(one["expected"] for one in rounds),
        "writes": sum(one["writes"] for one in rounds),
        "writer_behind_ms": 1000 * max(one["behind"] for one in rounds),
        "drained": all(one["drained"] for one in rounds),
        "server_cpu": sum(one["cpu"] for one in rounds) / len(rounds),
        "dropped": merged_counts(one["dropped"] for one in rounds),
    }


def merge_flood(rounds: list[dict[str, Any]], plan: Plan, clients: int) -> dict[str, Any]:
    writes = sum(one["writes"] for one in rounds)
    result: dict[str, Any] = {
        "clients": clients,
        "writes_per_s": writes / (plan.flood_seconds * len(rounds)),
        "rounds_writes_per_s": [one["writes"] / plan.flood_seconds for one in rounds],
        "server_cpu": sum(one["cpu"] for one in rounds) / len(rounds),
    }
    if clients:
        latencies = array("d")
        for one in rounds:
            latencies.extend(one["latencies"])
        result.update(
            {
                **distribution(latencies),
                "samples": len(latencies),
                "expected": sum(one["expected"] for one in rounds),
                "delivered_by_end": min(one["delivered_by_end"] for one in rounds),
                "lag_s": max(one["lag_s"] for one in rounds),
                "drained": all(one["drained"] for one in rounds),
                "dropped": merged_counts(one["dropped"] for one in rounds),
            }
        )
    return result


def merged_counts(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for key, value in one.items():
            total[key] = total.get(key, 0) + value
    return total


def run_ready(target: Target, writer: WriterProcess, plan: Plan) -> dict[str, Any]:
    """Sub-to-ready of a fresh AllBulks observer, against Django fetching and encoding the rows.

    The two take turns, so that both meet the machine in the same state.
    """
    runs, baseline = [], []
    for run in range(plan.ready_runs):
        reply = target.clients.ready_time("127.0.0.1", target.server.port, run)
        if reply["added"] != plan.bulk_rows:
            raise SystemExit(f"expected {plan.bulk_rows} added before ready, got {reply['added']}")
        runs.append(reply["seconds"])
        baseline += writer.call("baseline", 1)
    ready, fetch = statistics.median(runs), statistics.median(baseline)
    return {
        "rows": plan.bulk_rows,
        "ready_s": ready,
        "ready_runs_s": runs,
        "baseline_s": fetch,
        "baseline_runs_s": baseline,
        "ratio": ready / fetch,
    }


def measure(
    kinds: list[str],
    env: dict[str, str],
    writer: WriterProcess,
    plan: Plan,
    processes: int,
    atomic: bool,
    server_script: str | None = None,
) -> dict[str, Any]:
    """Every figure, for both servers at once: each point runs in rounds that alternate servers.

    Both servers stay up with their clients connected, and the rounds of one
    point take turns (floor, dddp, then dddp, floor...), so that a slow
    stretch of the disk (every save waits for its commit's fsync) weighs on
    both alike. An idle server costs the other little: its clients get no
    messages, and its LISTEN backend only wakes to skip a foreign notification.
    """
    targets: list[Target] = []
    results: dict[str, Any] = {"latency": [], "throughput": [], "connect": {}}
    try:
        for kind in kinds:
            server = start_dddp(env, server_script) if kind == "dddp" else start_floor(env)
            targets.append(Target(kind, server, Clients(processes)))
        dddp = next((t for t in targets if t.kind == "dddp"), None)
        if dddp is not None:
            note(f"dddp: {plan.bulk_rows:,}-row publication, sub to ready")
            results["ready"] = run_ready(dddp, writer, plan)
        latency_clients = {clients for clients, _rate in plan.latency_points}
        for count in sorted({*latency_clients, *plan.throughput_clients}):
            for target in targets:
                if count > target.clients.count:
                    opened = target.clients.grow(target.client_kind, "127.0.0.1", target.server.port, count)
                    results["connect"].setdefault(count, {})[target.kind] = opened
                    if opened["failures"]:
                        note(f"{target.kind}: {opened['failures']} while opening {count} clients")
            for rate in [rate for clients, rate in plan.latency_points if clients == count]:
                note(f"latency, {count} clients, {rate:g} writes/s")
                rounds = alternate(targets, plan.latency_rounds, latency_round, writer, plan, rate, atomic)
                results["latency"].append(
                    {"clients": count, "rate": rate, **{k: merge_latency(r) for k, r in rounds.items()}}
                )
            if count in plan.throughput_clients:
                note(f"throughput, {count} clients")
                rounds = alternate(targets, plan.flood_rounds, flood_round, writer, plan, atomic)
                results["throughput"].append(
                    {"clients": count, **{k: merge_flood(r, plan, count) for k, r in rounds.items()}}
                )
    finally:
        for target in targets:
            target.clients.close()
            target.server.stop()
            log = target.server.log_text()
            if target.server.process.returncode not in (0, -signal.SIGTERM) or "Traceback" in log:
                note(f"{target.kind} log (exit {target.server.process.returncode}):\n{log[-3000:]}")
            os.unlink(target.server.log.name)
    return results


def alternate(targets: list[Target], rounds: int, step: Any, *args: Any) -> dict[str, list[dict[str, Any]]]:
    """`rounds` runs of `step` per target, taking turns, the first one changing each round."""
    done: dict[str, list[dict[str, Any]]] = {target.kind: [] for target in targets}
    for number in range(rounds):
        for target in targets if number % 2 == 0 else reversed(targets):
            done[target.kind].append(step(target, *args))
    return done


# --- setup ----------------------------------------------------------------------------


def note(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def database_env() -> dict[str, str]:
    """The environment of every process here: one database for all of them."""
    import live_settings  # starts (or joins) the embedded PostgreSQL when DATABASE_URL is unset

    from dddp.database import database_url

    db = live_settings.DATABASES["default"]
    env = {**os.environ, "DATABASE_URL": database_url(db), "PYTHONUNBUFFERED": "1"}
    # The floor's pg client reads libpq's variables.
    env.update(PGHOST=db["HOST"], PGPORT=str(db["PORT"]), PGUSER=db["USER"], PGDATABASE=db["NAME"])
    env["PGPASSWORD"] = db["PASSWORD"]
    return env


def machine_busy(seconds: float = 2.0) -> float:
    """The fraction of all CPUs busy over `seconds` (before the run: what others take)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, all

    idle, total = sample()
    time.sleep(seconds)
    idle_after, total_after = sample()
    return 1 - (idle_after - idle) / max(1, total_after - total)


def dddp_version() -> str:
    """Which dddp was measured: its folder, and for this repository's the commit and any local edits."""
    import dddp

    folder = Path(dddp.__file__).resolve().parent
    if folder != REPO / "dddp":
        return str(folder)

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
        return done.stdout

    edited = [line[3:] for line in git("status", "--porcelain", "dddp").splitlines()]
    edits = f" with uncommitted changes in {', '.join(edited)}" if edited else ""
    return f"{folder} at {git('rev-parse', '--short', 'HEAD').strip()}{edits}"


def ensure_node_packages() -> None:
    if shutil.which("node") is None:
        raise SystemExit("the floor needs Node.js (node) on the PATH")
    if all((BENCH / "node_modules" / name / "package.json").exists() for name in ("ws", "pg")):
        return
    note("installing the floor's npm packages (ws, pg) into bench/node_modules")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True, timeout=300)


# --- report ---------------------------------------------------------------------------


def report(results: dict[str, Any], plan: Plan) -> str:
    rounds = f"{plan.latency_rounds} x {plan.latency_seconds:g} s per server and point"
    lines = [f"Commit-to-client latency, ms (updates; {rounds})"]
    lines.append(
        f"{'clients':>7} {'w/s':>3}  {'dddp p50':>9} {'p99':>7}  {'floor p50':>9} {'p99':>7}"
        f"  {'p99 ratio':>9}  {'target':<13}  save p50/p99 dddp, floor  samples dddp, floor"
    )
    for point in results["latency"]:
        d, f = point["dddp"], point["floor"]
        ratio = d["p99_ms"] / f["p99_ms"]
        spec = point["rate"] == SPEC_RATE
        target = verdict(ratio <= LATENCY_TARGET, f"<= {LATENCY_TARGET:g}x") if spec else "(extra)"
        lines.append(
            f"{point['clients']:>7} {point['rate']:>3g}  {d['p50_ms']:>9.1f} {d['p99_ms']:>7.1f}"
            f"  {f['p50_ms']:>9.1f} {f['p99_ms']:>7.1f}  {ratio:>9.2f}  {target:<13}"
            f"  {d['save_p50_ms']:.1f}/{d['save_p99_ms']:.1f}, {f['save_p50_ms']:.1f}/{f['save_p99_ms']:.1f}"
            f"  {completeness(d)}, {completeness(f)}"
        )
    for point in results["latency"]:
        if point["floor"]["p50_ms"] > SATURATED_MS:
            lines.append(
                f"  {point['clients']} clients x {point['rate']:g} writes/s: the floor itself falls behind "
                f"(p50 {point['floor']['p50_ms']:.0f} ms): this point compares two overloaded servers"
            )
    rounds = f"{plan.flood_rounds} x {plan.flood_seconds:g} s per server and point"
    lines += ["", f"Writes/s of one writer saving as fast as it can ({rounds})"]
    lines.append(
        f"{'clients':>7}  {'dddp':>7} {'floor':>7}  {'ratio':>5}  {'target':<13}"
        f"  {'dddp clients: got by end, last after end, p99':>52}  |  floor clients: same"
    )
    for point in results["throughput"]:
        d, f = point["dddp"], point["floor"]
        ratio = d["writes_per_s"] / f["writes_per_s"]
        lines.append(
            f"{point['clients']:>7}  {d['writes_per_s']:>7.1f} {f['writes_per_s']:>7.1f}  {ratio:>5.2f}"
            f"  {verdict(ratio >= THROUGHPUT_TARGET, f'>= {THROUGHPUT_TARGET:g}x')}"
            f"  {lag(d):>52}  |  {lag(f)}"
        )
    ready = results["ready"]
    config = results["config"]
    lines += [
        "",
        f"{ready['rows']:,}-row publication: sub to ready {1000 * ready['ready_s']:.0f} ms; "
        f"fetch through Django + encode as added {1000 * ready['baseline_s']:.0f} ms; "
        f"ratio {ready['ratio']:.2f}  {verdict(ready['ratio'] <= READY_TARGET, f'<= {READY_TARGET:g}x')}",
        "",
        f"{config['cpus']} CPUs, {100 * config['machine_busy_before']:.0f}% busy before the run; "
        f"load average after {config['load_average_after'][0]:.1f}; {config['seconds']:.0f} s; "
        f"writer in {'transaction.atomic()' if config['atomic'] else 'autocommit (Django default)'}",
        f"dddp: {config['dddp']}",
    ]
    return "\n".join(lines)


def verdict(ok: bool, target: str) -> str:
    return f"{target:<6} {'ok' if ok else 'MISSED'}"


def completeness(phase: dict[str, Any]) -> str:
    """Samples taken, and of how many writes x clients (dddp merges a row's changes when behind)."""
    if phase["samples"] == phase["expected"]:
        return f"{phase['samples']}"
    return f"{phase['samples']} of {phase['expected']}"


def lag(phase: dict[str, Any]) -> str:
    if not phase["clients"]:
        return "no clients"
    text = f"{100 * phase['delivered_by_end']:.0f}%, +{phase['lag_s']:.2f} s, {phase['p99_ms']:.0f} ms"
    if phase["samples"] < phase["expected"]:
        text += f", {100 * (1 - phase['samples'] / phase['expected']):.1f}% merged"
    return text if phase["drained"] else f"{text}, NOT DRAINED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer clients and shorter runs (a smoke test)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes sharing the clients (default 2)"
    )
    parser.add_argument(
        "--atomic", action="store_true", help="the writer saves inside transaction.atomic() (one commit)"
    )
    parser.add_argument(
        "--only", choices=["dddp", "floor"], help="measure one server only (no ratios; for profiling)"
    )
    parser.add_argument(
        "--server-script",
        metavar="PATH",
        help="run this script instead of `python -m dddp` (same arguments): a variant under test",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    ensure_node_packages()
    env = database_env()
    os.environ.update(DATABASE_URL=env["DATABASE_URL"], DJANGO_SETTINGS_MODULE="live_settings")
    measured = dddp_version()  # before the run: the servers load the code as it is now
    busy_before = machine_busy()
    if busy_before > 0.2:
        note(f"warning: the machine is already {100 * busy_before:.0f}% busy: the figures will be noisy")
    started = time.monotonic()
    writer = WriterProcess()
    try:
        note(f"writer: fresh tables, {plan.rows} rows to update, {plan.bulk_rows:,} rows to publish")
        writer.call("setup", plan.rows, plan.bulk_rows)
        kinds = [args.only] if args.only else ["floor", "dddp"]
        results = measure(kinds, env, writer, plan, args.client_processes, args.atomic, args.server_script)
    finally:
        writer.stop()
    results["config"] = {
        "plan": plan.__dict__,
        "quick": args.quick,
        "atomic": args.atomic,
        "client_processes": args.client_processes,
        "server_script": args.server_script,
        "dddp": measured,
        "seconds": time.monotonic() - started,
        "cpus": os.cpu_count(),
        "machine_busy_before": busy_before,
        "load_average_after": os.getloadavg(),
    }
    if args.json or args.only:  # with one server only there is no table of ratios
        print(json.dumps(results, indent=2, default=str))
    else:
        print(report(results, plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
