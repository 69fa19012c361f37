"""Logins benchmark (issue 10): password logins and resumes, and what they cost the others.

    python bench/logins.py [--clients 200] [--probe-every 0.01] [--json]

The bookstore example (its settings: dddp.accounts with the Meteor digest
hasher first, over Django's PBKDF2 at Django's rounds, 1,000,000 in 5.2) runs
on a free port, with `--clients` users made beforehand (all with the same
password). Meanwhile an unrelated client, already connected, calls
`count_books` every `--probe-every` seconds and records each call's latency:

1. **idle**: a few seconds with nothing else, the floor of the same run;
2. **password**: `--clients` clients connect at once and log in with the
   password's digest (Meteor's browser client's way), each on its own
   connection; the figure is logins per second, from the first `connect` sent
   to the last `result`;
3. **resume**: the same clients connect again and log in with their tokens.

Target: the unrelated client's p99 during the password logins under 50 ms,
while hashing runs at full speed (DDDP_PASSWORD_HASHING_THREADS threads busy
throughout). Every wait has a time limit; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from typing import Any

from live import distribution, machine_busy
from serverproc import Server, cpu_seconds, manage, migrate
from wsclient import ConnectionEnded, DDPClient, WebSocket

HOST = "127.0.0.1"
PASSWORD = "benchmark password"
DIGEST = {"digest": hashlib.sha256(PASSWORD.encode()).hexdigest(), "algorithm": "sha-256"}

MAKE_USERS = """
import os
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
User = get_user_model()
prefix, count = os.environ["BENCH_PREFIX"], int(os.environ["BENCH_USERS"])
password = os.environ["BENCH_PASSWORD"]
User.objects.filter(username__startswith=prefix).delete()
encoded = make_password(password)  # one hash for all: the benchmark measures checks, not set-up
User.objects.bulk_create(User(username=f"{prefix}{n}", password=encoded) for n in range(count))
print(encoded.split("$", 1)[0])
"""


def make_users(prefix: str, count: int) -> str:
    """The users the clients log in as; returns the algorithm their hash is of."""
    env = {"BENCH_PREFIX": prefix, "BENCH_USERS": str(count), "BENCH_PASSWORD": PASSWORD}
    return manage("shell", "-c", MAKE_USERS, env=env).strip().splitlines()[-1]


async def connected(port: int) -> tuple[WebSocket, DDPClient]:
    socket = await WebSocket.open_tcp(HOST, port)
    await socket.upgrade(HOST, port)
    client = DDPClient(socket)
    await client.connect()
    return socket, client


async def log_in(port: int, options: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """A fresh connection's login: (seconds from connect to result, the result)."""
    started = time.perf_counter()
    socket, client = await connected(port)
    try:
        result = await client.call("login", "login", [options])
        return time.perf_counter() - started, result
    finally:
        socket.close()


class Probe:
    """The unrelated client: a method call every `every` seconds, each call's latency kept."""

    def __init__(self, port: int, every: float):
        self.port, self.every = port, every
        self.latencies: list[tuple[float, float]] = []  # (when it was sent, seconds)
        self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        socket, client = await connected(self.port)
        number = 0
        try:
            while not stop.is_set():
                number += 1
                sent = time.perf_counter()
                try:
                    await asyncio.wait_for(client.call(f"p{number}", "count_books", []), 10)
                except (ConnectionEnded, asyncio.TimeoutError):
                    self.failures += 1
                    break
                self.latencies.append((sent, time.perf_counter() - sent))
                await asyncio.sleep(max(0.0, self.every - (time.perf_counter() - sent)))
        finally:
            socket.close()

    def between(self, start: float, end: float) -> list[float]:
        return [seconds for sent, seconds in self.latencies if start <= sent <= end]


async def run(args: argparse.Namespace, port: int, server_pid: int) -> dict[str, Any]:
    probe = Probe(port, args.probe_every)
    stop = asyncio.Event()
    probing = asyncio.create_task(probe.run(stop))
    await asyncio.sleep(1.0)  # connected and warm
    idle_start = time.perf_counter()
    await asyncio.sleep(args.idle)
    idle_end = time.perf_counter()

    figures: dict[str, Any] = {}
    tokens: list[str] = []
    for phase in ("password", "resume"):
        if phase == "password":
            options = [
                {"user": {"username": f"{args.prefix}{n}"}, "password": DIGEST} for n in range(args.clients)
            ]
        else:
            options = [{"resume": token} for token in tokens]
        cpu_before = cpu_seconds(server_pid)
        start = time.perf_counter()
        outcomes = await asyncio.wait_for(asyncio.gather(*(log_in(port, o) for o in options)), args.timeout)
        end = time.perf_counter()
        cpu = cpu_seconds(server_pid) - cpu_before
        if phase == "password":
            tokens = [result["token"] for _, result in outcomes]
        assert all(result.get("type") == phase for _, result in outcomes), outcomes[:3]
        figures[phase] = {
            "logins": len(outcomes),
            "seconds": end - start,
            "logins_per_s": len(outcomes) / (end - start),
            "server_cpu_s": cpu,
            **distribution([seconds for seconds, _ in outcomes], "login_"),
            **distribution(probe.between(start, end), "probe_"),
            "probe_calls": len(probe.between(start, end)),
        }
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(probing, 15)
    figures["idle"] = {
        **distribution(probe.between(idle_start, idle_end), "probe_"),
        "probe_calls": len(probe.between(idle_start, idle_end)),
    }
    figures["probe_failures"] = probe.failures
    return figures


def table(figures: dict[str, Any], config: dict[str, Any]) -> str:
    lines = [
        f"{config['clients']} clients, {config['hasher']} (threads: {config['threads']}), "
        f"a probe call every {config['probe_every'] * 1000:.0f} ms, "
        f"machine busy before: {config['busy']:.0%}",
        "",
        f"{'phase':<10} {'logins/s':>9} {'login p50/p99 ms':>18} {'server CPU s':>13} "
        f"{'probe p50/p99/max ms':>22} {'calls':>6}",
    ]
    for phase in ("idle", "password", "resume"):
        row = figures[phase]
        logins = f"{row['logins_per_s']:9.1f}" if "logins_per_s" in row else f"{'':>9}"
        login = f"{row['login_p50_ms']:.0f} / {row['login_p99_ms']:.0f}" if "login_p50_ms" in row else ""
        cpu = f"{row['server_cpu_s']:.1f}" if "server_cpu_s" in row else ""
        probe = f"{row['probe_p50_ms']:.1f} / {row['probe_p99_ms']:.1f} / {row['probe_max_ms']:.1f}"
        lines.append(f"{phase:<10} {logins} {login:>18} {cpu:>13} {probe:>22} {row['probe_calls']:>6}")
    target = figures["password"]["probe_p99_ms"] < 50
    lines.append("")
    lines.append(f"probe p99 during password logins under 50 ms: {'PASS' if target else 'FAIL'}")
    if figures["probe_failures"]:
        lines.append(f"probe failures: {figures['probe_failures']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--probe-every", type=float, default=0.01, help="seconds between probe calls")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of the idle floor")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a phase may take")
    parser.add_argument("--prefix", default="bench-login-")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    busy = machine_busy()
    migrate()
    hasher = make_users(args.prefix, args.clients)
    server = Server("dddp-bench-logins", "WARNING")
    try:
        port = server.wait_until_listening()
        figures = asyncio.run(run(args, port, server.pid))
    finally:
        server.stop()
        server.discard_log()
    config = {
        "clients": args.clients,
        "probe_every": args.probe_every,
        "hasher": hasher,
        "threads": max(1, (os.cpu_count() or 2) - 1),  # the example leaves the default
        "busy": busy,
    }
    if args.json:
        print(json.dumps({"config": config, "figures": figures}, indent=2))
    else:
        print(table(figures, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
