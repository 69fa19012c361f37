"""SockJS live-data speed: dddp's SockJS transports against its raw WebSocket and a sockjs floor, in one run.

    python bench/sockjs.py [--quick] [--json] [--rounds N] [--seconds S]
                           [--clients 100,1000] [--xhr-clients 100] [--rate 50]

Rows, each measured at `--rate` writes/s (50), side by side in one run, on
one machine and database:

- `raw-ws`: dddp over its raw `/websocket`, as `live.py` measures it;
- `sockjs-ws`: dddp over the SockJS websocket transport (`/sockjs/<s>/<id>/websocket`);
- `floor-ws`: the floor, `sockjs_floor.js` (npm `sockjs` 0.3.24, the SockJS
  server Meteor runs, LISTENing to a trigger's NOTIFY and writing each payload
  to every session), over the SockJS websocket;
  each with 100 and 1,000 clients (`--clients`);
- `dddp-xhr` and `floor-xhr`: the same two servers over xhr-polling, with 100
  clients (`--xhr-clients`).

Printed: commit-to-client p50/p99 of every row, and the ratios of p99 the
issue sets targets for: sockjs-ws / raw-ws (<= 1.2x), sockjs-ws / floor-ws
(<= 1.5x), dddp-xhr / floor-xhr (<= 1.5x).

The workload and the measurement are `live.py`'s (its writer process, its
`latency_round`): one table of 100 rows, every write an update through the
Django ORM with `sent_at = time.time()`, each client's sample its receipt time
minus `sent_at`. DDP clients connect and subscribe to `AllTicks`; floor
clients only open their session. WebSocket clients are `live_clients.py`'s
epoll processes; xhr-polling ones `sockjs_clients.py`'s asyncio processes
(two keep-alive connections per client, a new poll as soon as one is answered).

Why a script of its own rather than `live.py --transport`: three or five rows
per point, not two, and no throughput or `ready` figures. Rows of one server
share its table (a write reaches every subscriber of the server), so only one
row's clients are connected at a time: each round opens its row's clients,
lets them settle, measures, and closes them (xhr-polling sessions are ended
explicitly: dddp's with `unsub`, the floor's by sending it anything), and the
rows of a point take turns, the first changing each round, so that a slow
stretch of the machine weighs on all of them alike.

The database is $DATABASE_URL, else an embedded PostgreSQL in /tmp/dddp-sockjs-pgdata.
Everything listens on 127.0.0.1; every wait is bounded; every process started
here is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from live import (
    Server,
    WriterProcess,
    dddp_version,
    latency_round,
    machine_busy,
    merge_latency,
    note,
    start_dddp,
)
from live_clients import Clients
from live_writer import FLOOR_CHANNEL
from sockjs_clients import xhr_worker_main

BENCH = Path(__file__).resolve().parent
PGDATA = Path("/tmp/dddp-sockjs-pgdata")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: (name, server, client kind) of every row; the xhr ones run at `--xhr-clients`.
WS_ROWS = (
    ("raw-ws", "dddp", "ddp"),
    ("sockjs-ws", "dddp", "sockjs-ddp"),
    ("floor-ws", "floor", "sockjs-floor"),
)
XHR_ROWS = (("dddp-xhr", "dddp", "xhr-ddp"), ("floor-xhr", "floor", "xhr-floor"))
#: (numerator, denominator, target) of the p99 ratios the issue sets.
RATIOS = (("sockjs-ws", "raw-ws", 1.2), ("sockjs-ws", "floor-ws", 1.5), ("dddp-xhr", "floor-xhr", 1.5))
#: The floor's sockjs heartbeat_delay, ms: on websockets a ping, which live clients do not answer;
#: dddp's (live_settings) sends no heartbeats either.
FLOOR_HEARTBEAT_MS = 600_000
SATURATED_MS = 100.0  # a floor p50 above this: the machine, not the server, sets the pace


@dataclass(frozen=True)
class Plan:
    clients: tuple[int, ...] = (100, 1000)
    xhr_clients: tuple[int, ...] = (100,)
    rate: float = 50.0
    latency_rounds: int = 3  # per row, taking turns with the point's other rows
    latency_warmup: float = 1.0
    latency_seconds: float = 5.0  # per round
    latency_drain: float = 30.0  # seconds after the writer stops for clients to catch up
    settle: float = 1.0  # seconds between opening a row's clients and its round
    rows: int = 100  # rows of the published table (each DDP client's initial `added`s)


QUICK = Plan(clients=(100,), xhr_clients=(100,), latency_rounds=1, latency_seconds=3.0, latency_drain=10.0)


@dataclass
class RoundTarget:
    """What `live.latency_round` uses of a target: its server, its clients, its table."""

    server: Server
    clients: Clients
    table: str


def start_floor(env: dict[str, str]) -> Server:
    command = ["node", str(BENCH / "sockjs_floor.js"), FLOOR_CHANNEL, str(FLOOR_HEARTBEAT_MS)]
    return Server("sockjs-floor", command, r"listening on (\d+)", {**env, "PGAPPNAME": "sockjs-floor"})


def measure(
    env: dict[str, str], writer: WriterProcess, plan: Plan, processes: int, server_script: str | None
) -> dict[str, Any]:
    servers: dict[str, Server] = {}
    pools: dict[str, Clients] = {}
    results: dict[str, Any] = {"points": [], "ratios": []}
    try:
        servers["floor"] = start_floor(env)
        servers["dddp"] = start_dddp(env, server_script)
        pools["ws"] = Clients(processes)
        pools["xhr"] = Clients(processes, xhr_worker_main)
        for count in sorted({*plan.clients, *plan.xhr_clients}):
            rows = [
                *(WS_ROWS if count in plan.clients else ()),
                *(XHR_ROWS if count in plan.xhr_clients else ()),
            ]
            done: dict[str, list[dict[str, Any]]] = {name: [] for name, _server, _kind in rows}
            for number in range(plan.latency_rounds):
                for name, server, kind in rows if number % 2 == 0 else list(reversed(rows)):
                    note(f"{count} clients, {name}, round {number + 1} of {plan.latency_rounds}")
                    pool = pools["xhr" if kind.startswith("xhr-") else "ws"]
                    done[name].append(one_round(servers[server], pool, kind, count, writer, plan))
            point = {"clients": count, "rate": plan.rate, "rows": {}}
            for name, rounds in done.items():
                merged = merge_latency(rounds)
                merged["open_failures"] = merged_failures(rounds)
                merged["open_seconds"] = max(one["open_seconds"] for one in rounds)
                merged["clients_cpu"] = sum(one["clients_cpu"] for one in rounds) / len(rounds)
                point["rows"][name] = merged
            results["points"].append(point)
            for top, bottom, target in RATIOS:
                if top in point["rows"] and bottom in point["rows"]:
                    results["ratios"].append(ratio(point, top, bottom, target))
    finally:
        for pool in pools.values():
            pool.close()
        for name, server in servers.items():
            server.stop()
            log = server.log_text()
            if server.process.returncode not in (0, -signal.SIGTERM) or "Traceback" in log:
                note(f"{name} log (exit {server.process.returncode}):\n{log[-3000:]}")
            os.unlink(server.log.name)
    return results


def one_round(
    server: Server, clients: Clients, kind: str, count: int, writer: WriterProcess, plan: Plan
) -> dict[str, Any]:
    """Open `count` clients of `kind`, take one paced round of samples, close them."""
    opened = clients.grow(kind, "127.0.0.1", server.port, count)
    if opened["failures"]:
        note(f"  {opened['opened']} of {count} opened; failures: {opened['failures']}")
    try:
        time.sleep(plan.settle)
        table = "floor" if server.name == "sockjs-floor" else "tick"
        began, cpu = time.time(), clients_cpu(clients)
        result = latency_round(RoundTarget(server, clients, table), writer, plan, plan.rate, False)
        result["clients_cpu"] = (clients_cpu(clients) - cpu) / (time.time() - began)
    finally:
        clients.drop()
    time.sleep(0.5)  # the server lets go of the closed sessions before the next round
    result["open_seconds"] = opened["seconds"]
    result["open_failures"] = opened["failures"]
    return result


def clients_cpu(clients: Clients) -> float:
    """User + system CPU seconds of the client processes so far (proc(5) stat fields 14 and 15)."""
    total = 0
    for process in clients.processes:
        with open(f"/proc/{process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def merged_failures(rounds: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in rounds:
        for reason, number in one["open_failures"].items():
            total[reason] = total.get(reason, 0) + number
    return total


def ratio(point: dict[str, Any], top: str, bottom: str, target: float) -> dict[str, Any]:
    a, b = point["rows"][top], point["rows"][bottom]
    return {
        "clients": point["clients"],
        "name": f"{top} / {bottom}",
        "p99": a["p99_ms"] / b["p99_ms"],
        "p50": a["p50_ms"] / b["p50_ms"],
        "target": target,
        "ok": a["p99_ms"] / b["p99_ms"] <= target,
    }


# --- setup ----------------------------------------------------------------------------


def database_env() -> dict[str, str]:
    """One database for every process here: $DATABASE_URL, else this benchmark's embedded one."""
    from dddp.database import database_url, embedded_database

    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = database_url(embedded_database(PGDATA))  # joined until we exit
    import live_settings

    db = live_settings.DATABASES["default"]
    env = {**os.environ, "DATABASE_URL": database_url(db), "PYTHONUNBUFFERED": "1"}
    # The floor's pg client reads libpq's variables.
    env.update(PGHOST=db["HOST"], PGPORT=str(db["PORT"]), PGUSER=db["USER"], PGDATABASE=db["NAME"])
    env["PGPASSWORD"] = db["PASSWORD"]
    return env


def ensure_node_packages() -> None:
    if shutil.which("node") is None:
        raise SystemExit("the floor needs Node.js (node) on the PATH")
    if all((BENCH / "node_modules" / name / "package.json").exists() for name in ("sockjs", "pg")):
        return
    note("installing the floor's npm packages (sockjs, pg) into bench/node_modules")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True, timeout=300)


# --- report ---------------------------------------------------------------------------


def report(results: dict[str, Any], plan: Plan) -> str:
    rounds = f"{plan.latency_rounds} x {plan.latency_seconds:g} s per row"
    lines = [f"Commit-to-client latency, ms, at {plan.rate:g} writes/s ({rounds}; rows take turns)"]
    lines.append(
        f"{'clients':>7}  {'row':<10} {'p50':>7} {'p99':>7} {'max':>7}  {'CPU: server':>11} {'clients':>7}"
        f"  {'save p50/p99':>12}  samples"
    )
    for point in results["points"]:
        for name, row in point["rows"].items():
            failures = sum(row["open_failures"].values())
            lines.append(
                f"{point['clients']:>7}  {name:<10} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f}"
                f" {row['max_ms']:>7.1f}  {100 * row['server_cpu']:>10.0f}% {100 * row['clients_cpu']:>6.0f}%"
                f"  {row['save_p50_ms']:>5.1f}/{row['save_p99_ms']:<6.1f}  {completeness(row)}"
                + (f"  ({failures} clients failed to open)" if failures else "")
                + ("" if row["drained"] else "  NOT DRAINED")
            )
    lines += ["", "Ratios (p99; p50 for information)"]
    for one in results["ratios"]:
        verdict = f"<= {one['target']:g}x {'ok' if one['ok'] else 'MISSED'}"
        lines.append(
            f"{one['clients']:>7}  {one['name']:<22} p99 {one['p99']:>5.2f}  {verdict:<13}"
            f"  p50 {one['p50']:>5.2f}"
        )
    for point in results["points"]:
        for name in ("floor-ws", "floor-xhr"):
            floor = point["rows"].get(name)
            if floor and floor["p50_ms"] > SATURATED_MS:
                lines.append(
                    f"  {point['clients']} clients: {name} itself falls behind"
                    f" (p50 {floor['p50_ms']:.0f} ms):"
                    " its ratio compares against an overloaded floor"
                )
    config = results["config"]
    lines += [
        "",
        f"{config['cpus']} CPUs, {100 * config['machine_busy_before']:.0f}% busy before the run; "
        f"load average after {config['load_average_after'][0]:.1f}; {config['seconds']:.0f} s",
        f"dddp: {config['dddp']}" + (f" run by {config['server_script']}" if config["server_script"] else ""),
    ]
    return "\n".join(lines)


def completeness(row: dict[str, Any]) -> str:
    """Samples taken, and of how many writes x clients (dddp merges a row's changes when behind)."""
    if row["samples"] == row["expected"]:
        return f"{row['samples']}"
    return f"{row['samples']} of {row['expected']}"


def counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="100 clients, one 3 s round per row (a smoke test)")
    add("--json", action="store_true", help="print the results as JSON instead of a table")
    add("--clients", type=counts, help="websocket rows' client counts (default 100,1000)")
    add("--xhr-clients", type=counts, help="xhr-polling rows' client counts (default 100; '' for none)")
    add("--rate", type=float, help="writes/s (default 50)")
    add("--rounds", type=int, help="rounds per row and point (default 3)")
    add("--seconds", type=float, help="seconds per round (default 5)")
    add("--client-processes", type=int, default=2, help="processes sharing the clients (default 2)")
    add(
        "--server-script",
        metavar="PATH",
        help="run this script instead of `python -m dddp` (same arguments): a variant under test",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    changes = {
        "clients": args.clients,
        "xhr_clients": args.xhr_clients,
        "rate": args.rate,
        "latency_rounds": args.rounds,
        "latency_seconds": args.seconds,
    }
    plan = Plan(**{**plan.__dict__, **{k: v for k, v in changes.items() if v is not None}})
    ensure_node_packages()
    env = database_env()
    os.environ.update(DATABASE_URL=env["DATABASE_URL"], DJANGO_SETTINGS_MODULE="live_settings")
    measured = dddp_version()
    busy_before = machine_busy()
    if busy_before > 0.2:
        note(f"warning: the machine is already {100 * busy_before:.0f}% busy: the figures will be noisy")
    started = time.monotonic()
    writer = WriterProcess()
    try:
        note(f"writer: fresh tables, {plan.rows} rows to update")
        writer.call("setup", plan.rows, 0)
        results = measure(env, writer, plan, args.client_processes, args.server_script)
    finally:
        writer.stop()
    results["config"] = {
        "plan": plan.__dict__,
        "client_processes": args.client_processes,
        "server_script": args.server_script,
        "dddp": measured,
        "seconds": time.monotonic() - started,
        "cpus": os.cpu_count(),
        "machine_busy_before": busy_before,
        "load_average_after": os.getloadavg(),
    }
    print(json.dumps(results, indent=2, default=str) if args.json else report(results, plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
