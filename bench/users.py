"""Logged-in users benchmark (issue 10): what 1,000 logged-in users cost, side by side.

    python bench/users.py [--users 1000] [--rate 50] [--seconds 5] [--rounds 2] [--json]

One dddp server (`users_settings`: the live-data benchmark's `live_app` with
Django's users, `dddp.accounts` and `users_app`) and `--users` users, each
with a resume token and one `Note` row of its own, made beforehand. Clients
are `live_clients.py`'s (epoll processes over raw WebSockets); a logged-in one
connects, logs in with its token, then subscribes. A writer process saves
through the ORM `--rate` times a second, each save stamping `sent_at`, and
every `changed` a client receives is a commit-to-client sample.

1. **A public publication**: `--users` clients subscribed to `AllTicks` while
   the writer updates ticks, in rounds that alternate anonymous clients and
   logged-in ones (every client gets every write). Targets: the logged-in
   clients' p99 within 1.2x of the anonymous clients', and one `AllTicks`
   observer for all of them (the server, `observed_server.py`, is asked how
   many observers its hub holds).
2. **A per-user publication**: `MyNotes` (the user's own notes: one observer
   per user). First one logged-in client, while the writer updates its note;
   then `--users` of them, while the writer updates their notes round robin
   (each write concerns one client). Figures: the time for all of them to
   connect, log in and be `ready` (50 at a time), the server's RSS growth per
   user, and p99 against the single user's. Target (issue 11): within 2x; the
   hub files the observers by owner (dddp.server.routing), so a change is
   offered to its owner's observer only.

Every wait has a time limit; the server, the writer and the clients are
stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from live import Server, WriterProcess, distribution, machine_busy, note
from live_clients import Clients
from live_writer import Writer, answer_commands
from serverproc import BENCH, memory

HOST = "127.0.0.1"
SETTINGS_MODULE = "users_settings"
P99_RATIO_TARGET = 1.2  # logged-in users of a public publication, against anonymous clients
PER_USER_RATIO_TARGET = 2.0  # many users' per-user publications, against one user's


# --- the writer: users, their tokens and notes -----------------------------------------------


class UsersWriter(Writer):
    """`live_writer.Writer`, which also makes the users and their notes (table "note": all of
    them, in the users' order; "note1": the first user's only)."""

    def make_users(self, count: int) -> list[str]:
        """Fresh users, each with a login token (returned, in the users' order) and a note."""
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.utils import timezone
        from users_app.models import Note

        from dddp.accounts.models import LoginToken
        from dddp.accounts.tokens import hash_token

        user_model: Any = get_user_model()
        user_model.objects.filter(username__startswith="bench-").delete()
        with connection.schema_editor() as editor:
            editor.execute(f"DROP TABLE IF EXISTS {Note._meta.db_table}")
            editor.create_model(Note)
        users = user_model.objects.bulk_create(
            user_model(username=f"bench-{number}", password="!")
            for number in range(count)  # no password
        )
        tokens = [secrets.token_urlsafe(32) for _ in users]
        now = timezone.now()
        LoginToken.objects.bulk_create(
            LoginToken(user=user, hashed_token=hash_token(token), when=now)
            for user, token in zip(users, tokens, strict=True)
        )
        Note.objects.bulk_create(Note(owner=user, sent_at=time.time()) for user in users)
        self.rows["note"] = list(Note.objects.order_by("owner_id"))
        self.rows["note1"] = self.rows["note"][:1]
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {Note._meta.db_table}")
        return tokens


def writer_main(pipe: Connection) -> None:
    """The writer process (multiprocessing, spawn): `live_writer.writer_main` with these settings."""
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    import django

    django.setup()
    answer_commands(pipe, UsersWriter())


# --- the server -------------------------------------------------------------------------------


class ObservedServer(Server):
    """`observed_server.py` (python -m dddp) on `users_settings` (or `settings`); `observers()`
    asks its hub."""

    def __init__(self, env: dict[str, str], settings: str = SETTINGS_MODULE):
        self.observers_file = tempfile.mktemp(prefix="dddp-observers-", suffix=".json")
        command = [sys.executable, str(BENCH / "observed_server.py"), "--settings", settings]
        command += ["--pythonpath", str(BENCH), "--no-django", "--log-level", "INFO", "127.0.0.1:0"]
        env = {**env, "PGAPPNAME": "users-dddp", "DDDP_OBSERVERS_FILE": self.observers_file}
        super().__init__("dddp", command, r"listening on http://[^:/]+:(\d+)/", env)

    def observers(self, timeout: float = 10.0) -> dict[str, Any]:
        if os.path.exists(self.observers_file):
            os.unlink(self.observers_file)
        self.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.observers_file):
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not count its observers")
            time.sleep(0.05)
        counts: dict[str, Any] = json.loads(Path(self.observers_file).read_text())
        os.unlink(self.observers_file)
        return counts

    def rss_kib(self) -> int:
        return memory(self.process.pid).rss_kib


# --- measurements -------------------------------------------------------------------------------


def paced_round(
    server: ObservedServer, clients: Clients, writer: WriterProcess, table: str, args: argparse.Namespace
) -> dict[str, Any]:
    """The writer saves `args.rate` times a second for a warm-up second and `args.seconds`;
    every sample of the measured seconds, once each client has what it is owed."""
    begin = time.time() + 0.3  # time for every client process to take the window
    start = begin + 1.0
    end = start + args.seconds
    clients.window(start, end)
    cpu = server.cpu_seconds()
    writes, _last, behind, durations = writer.call("paced", table, args.rate, begin, start, end, False)
    owed = writes * (clients.count if table == "tick" else 1)  # a note concerns its owner only
    deadline = time.time() + 30.0
    while clients.progress()["received"] < owed and time.time() < deadline:
        time.sleep(0.1)
    cpu = server.cpu_seconds() - cpu
    latencies, summary = clients.collect()
    return {
        "writes": writes,
        "owed": owed,
        "received": summary["received"],
        "latencies": list(latencies),
        "save_ms": distribution(durations, "")["p50_ms"],
        "writer_behind_ms": 1000 * behind,
        "cpu_ms_per_write": 1000 * cpu / (args.rate * (end - begin)),
        "dropped": summary["dropped"],
    }


def merged(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [seconds for one in rounds for seconds in one["latencies"]]
    return {
        "rounds": len(rounds),
        "writes": sum(one["writes"] for one in rounds),
        "owed": sum(one["owed"] for one in rounds),
        "received": sum(one["received"] for one in rounds),
        **distribution(latencies),
        "cpu_ms_per_write": sum(one["cpu_ms_per_write"] for one in rounds) / len(rounds),
        "dropped": [one["dropped"] for one in rounds if one["dropped"]],
    }


def public_publication(
    server: ObservedServer,
    clients: Clients,
    writer: WriterProcess,
    tokens: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """AllTicks: anonymous clients and logged-in ones, in alternating rounds."""
    rounds: dict[str, list[dict[str, Any]]] = {"anonymous": [], "logged_in": []}
    connects: dict[str, list[float]] = {"anonymous": [], "logged_in": []}
    observers: dict[str, Any] = {}
    for number in range(args.rounds):
        order = ["anonymous", "logged_in"] if number % 2 == 0 else ["logged_in", "anonymous"]
        for who in order:
            note(f"AllTicks, round {number + 1}: {args.users} {who.replace('_', '-')} clients")
            opened = clients.grow(
                "ddp", HOST, server.port, args.users, resumes=tokens if who == "logged_in" else None
            )
            if opened["failures"] or opened["opened"] != args.users:
                raise SystemExit(f"{who}: opened {opened['opened']} of {args.users}: {opened['failures']}")
            connects[who].append(opened["seconds"])
            if who == "logged_in" and not observers:
                observers = server.observers()
            rounds[who].append(paced_round(server, clients, writer, "tick", args))
            clients.drop()
            time.sleep(1.0)  # the server ends the sessions and their observers
    result = {who: {**merged(done), "connect_s": connects[who]} for who, done in rounds.items()}
    result["observers_logged_in"] = observers
    result["p99_ratio"] = result["logged_in"]["p99_ms"] / result["anonymous"]["p99_ms"]
    return result


def per_user_publication(
    server: ObservedServer,
    clients: Clients,
    writer: WriterProcess,
    tokens: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """MyNotes: one user alone, then all of them, each round."""
    single: list[dict[str, Any]] = []
    everyone: list[dict[str, Any]] = []
    subscribes: list[dict[str, Any]] = []
    observers: dict[str, Any] = {}
    for number in range(args.rounds):
        note(f"MyNotes, round {number + 1}: one user")
        opened = clients.grow("ddp", HOST, server.port, 1, publication="MyNotes", resumes=tokens[:1])
        if opened["opened"] != 1:
            raise SystemExit(f"the single user's client failed: {opened['failures']}")
        single.append(paced_round(server, clients, writer, "note1", args))
        note(f"MyNotes, round {number + 1}: {args.users} users")
        rss_before = server.rss_kib()
        opened = clients.grow(
            "ddp", HOST, server.port, args.users, publication="MyNotes", resumes=tokens[1 : args.users]
        )
        if opened["failures"] or clients.count != args.users:
            raise SystemExit(f"opened {clients.count} of {args.users}: {opened['failures']}")
        time.sleep(1.0)
        subscribes.append(
            {
                "seconds": opened["seconds"],
                "rss_kib_per_user": (server.rss_kib() - rss_before) / (args.users - 1),
            }
        )
        if not observers:
            observers = server.observers()
        everyone.append(paced_round(server, clients, writer, "note", args))
        clients.drop()
        time.sleep(1.0)
    result = {
        "single": merged(single),
        "everyone": merged(everyone),
        "subscribe": subscribes,
        "observers": observers,
    }
    result["p99_ratio"] = result["everyone"]["p99_ms"] / result["single"]["p99_ms"]
    return result


# --- the report -----------------------------------------------------------------------------------


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    public, per_user = results["public"], results["per_user"]
    lines = [
        f"{args.users} users, {args.rate:g} writes/s, {args.rounds} rounds of {args.seconds:g} s, "
        f"machine busy before: {results['config']['machine_busy_before']:.0%}",
        "",
        "commit-to-client (ms)        p50      p99      max   CPU/write   received/owed",
    ]

    def row(label: str, figures: dict[str, Any]) -> str:
        return (
            f"{label:<26} {figures['p50_ms']:7.1f}  {figures['p99_ms']:7.1f}  {figures['max_ms']:7.1f}  "
            f"{figures['cpu_ms_per_write']:7.2f} ms   {figures['received']}/{figures['owed']}"
        )

    lines += [
        row("AllTicks, anonymous", public["anonymous"]),
        row("AllTicks, logged in", public["logged_in"]),
        row("MyNotes, 1 user", per_user["single"]),
        row(f"MyNotes, {args.users} users", per_user["everyone"]),
        "",
    ]
    ratio = public["p99_ratio"]
    observed = public["observers_logged_in"].get("by_publication", {})
    lines.append(
        f"AllTicks logged in / anonymous p99: {ratio:.2f}x (target <= {P99_RATIO_TARGET}x: "
        f"{'PASS' if ratio <= P99_RATIO_TARGET else 'FAIL'}); observers with {args.users} logged-in "
        f"clients: AllTicks {observed.get('AllTicks', 0)} "
        f"({'PASS' if observed.get('AllTicks') == 1 else 'FAIL'}: one), "
        f"their users documents {observed.get('dddp.accounts.current_user', 0)}"
    )
    connects = ", ".join(f"{s:.1f}" for s in public["logged_in"]["connect_s"])
    lines.append(f"{args.users} logged-in clients connected, logged in and ready in: {connects} s")
    subscribes = per_user["subscribe"]
    lines.append(
        f"MyNotes, {args.users} users: connected, logged in and ready in "
        + ", ".join(f"{one['seconds']:.1f}" for one in subscribes)
        + " s; server RSS per user "
        + ", ".join(f"{one['rss_kib_per_user']:.1f}" for one in subscribes)
        + f" KiB; observers: MyNotes {per_user['observers'].get('by_publication', {}).get('MyNotes', 0)}"
    )
    verdict = "PASS" if per_user["p99_ratio"] <= PER_USER_RATIO_TARGET else "FAIL"
    lines.append(
        f"MyNotes, {args.users} users / 1 user p99: {per_user['p99_ratio']:.2f}x"
        f" (target <= {PER_USER_RATIO_TARGET}x: {verdict})"
    )
    return "\n".join(lines)


# --- setup ---------------------------------------------------------------------------------------


def shut_down(clients: Clients | None, server: ObservedServer | None, writer: WriterProcess) -> None:
    """Stop the clients, the server (showing its log's end if it has a traceback) and the writer."""
    if clients is not None:
        clients.close()
    if server is not None:
        server.stop()
        log = server.log_text()
        if "Traceback" in log:
            note(f"server log:\n{log[-3000:]}")
        os.unlink(server.log.name)
    writer.stop()


def database_env(settings: str = SETTINGS_MODULE) -> dict[str, str]:
    """The environment of every process here: one database for all of them."""
    module = importlib.import_module(settings)  # starts (or joins) the embedded PostgreSQL if no DATABASE_URL

    from dddp.database import database_url

    return {**os.environ, "DATABASE_URL": database_url(module.DATABASES["default"]), "PYTHONUNBUFFERED": "1"}


def prepare(settings: str = SETTINGS_MODULE) -> tuple[dict[str, str], float]:
    """The database, migrated, for this process and its children; and how busy the machine was."""
    env = database_env(settings)
    os.environ.update(DATABASE_URL=env["DATABASE_URL"], DJANGO_SETTINGS_MODULE=settings)
    busy_before = machine_busy()
    if busy_before > 0.2:
        note(f"warning: the machine is already {100 * busy_before:.0f}% busy: the figures will be noisy")
    note("migrate")
    migrate(env, settings)
    return env, busy_before


def migrate(env: dict[str, str], settings: str = SETTINGS_MODULE) -> None:
    command = [sys.executable, "-m", "django", "migrate", "--no-input", "-v", "0"]
    command += ["--settings", settings, "--pythonpath", str(BENCH)]
    done = subprocess.run(command, cwd=BENCH, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise SystemExit(f"migrate failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000, help="users, and clients (default 1000)")
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second (default 50)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each kind (default 2)")
    parser.add_argument("--client-processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env, busy_before = prepare()
    writer = WriterProcess(writer_main)
    server: ObservedServer | None = None
    clients: Clients | None = None
    try:
        writer.call("setup", 100, 0)
        note(f"{args.users} users, their tokens and notes")
        tokens = writer.call("make_users", args.users)
        server = ObservedServer(env)
        clients = Clients(args.client_processes)
        results: dict[str, Any] = {
            "public": public_publication(server, clients, writer, tokens, args),
            "per_user": per_user_publication(server, clients, writer, tokens, args),
        }
    finally:
        shut_down(clients, server, writer)
    results["config"] = {**vars(args), "cpus": os.cpu_count(), "machine_busy_before": busy_before}
    for part in ("public", "per_user"):
        for figures in results[part].values():
            if isinstance(figures, dict):
                figures.pop("latencies", None)
    print(json.dumps(results, indent=2, default=str) if args.json else report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
