"""Observers at scale (issue 11): N clients, each with its own parameters, side by side.

    python bench/observers.py [--ladder 1,100,1000,10000] [--email-ladder 1,100,1000,10000]
                              [--rate 50] [--seconds 5] [--json]

One dddp server (`observers_settings`: `observers_app`'s authors and books, one
book per author, 10,000 of each, made beforehand) and, for each rung N of the
ladder, N clients (`live_clients.py`'s, raw WebSocket), each subscribed with
its own author: N observers. A writer process updates the first N books
round robin through the ORM at `--rate` writes a second, each save stamping
`sent_at`, so each write concerns exactly one client; every `changed` is a
commit-to-client sample.

- `BooksByAuthor(author_id)`: a filter on the book's own column. The hub files
  these observers by author (dddp.server.routing): a write is offered to one
  observer, and decided in memory. Targets: p99 within 2x of N = 1, CPU per
  write within 1.5x, no query per write.
- `BooksByAuthorEmail(email)`: the brief's, through a join. The hub files
  these by email too, and reads each batch's books' emails in one query
  shared by all of them. Targets: p99 and CPU per write within 2x of N = 1,
  queries per write independent of N.
- `BooksByAuthorEmail` with writes of the first N *authors* instead (the
  joined rows, their `sent_at`; row "…/author"): each reaches the one
  observer of its email, found by the author's books, read in one query per
  batch; the concerned observer reads its books again. Same targets.

Per rung: the time for the N clients to connect (WebSocket and DDP `connect`,
50 at a time), then, once the server has settled, for all of them to subscribe at
once, each with its own parameters, until the last `ready`; the seconds until the
server settled after that (two of the heap trimmer's intervals, for its one
pass after the burst, then a second with under 20 ms of CPU), then
p50/p99/max, the server's CPU per write, its CPU with the clients connected
and nothing written (3 s before the writes: "idle CPU", ms per second), the
CPU per write net of that (CPU/write - idle / rate), and the database
transactions per write other than the writer's own (PostgreSQL's
`xact_commit`, which counts each of the server's autocommit queries).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from multiprocessing.connection import Connection
from typing import Any

from live import WriterProcess, note
from live_clients import Clients
from live_writer import Writer, answer_commands
from users import ObservedServer, merged, paced_round, prepare, shut_down

from dddp.server.heap import TRIM_INTERVAL

HOST = "127.0.0.1"
SETTINGS_MODULE = "observers_settings"
AUTHORS = 10_000
P99_TARGET = 2.0  # against N = 1
IDLE_SECONDS = 3.0  # measured with the clients connected and nothing written
QUIET_CPU = 0.020  # seconds of server CPU in a second: settled
MAX_SETTLE = 30.0
OWN_COLUMN_CPU_TARGET = 1.5


class BooksWriter(Writer):
    """`live_writer.Writer`, which also makes the authors and books, and updates the first
    `count` books (table "book")."""

    def make_books(self, count: int) -> list[tuple[int, str]]:
        """Fresh tables with `count` authors, one book each; (author id, email) of each."""
        from django.db import connection
        from observers_app.models import Author, Book

        with connection.schema_editor() as editor:
            for model in (Book, Author):
                editor.execute(f"DROP TABLE IF EXISTS {model._meta.db_table} CASCADE")
            editor.create_model(Author)
            editor.create_model(Book)
        authors = Author.objects.bulk_create(Author(email=f"author-{n}@example.com") for n in range(count))
        Book.objects.bulk_create(Book(author=author, sent_at=time.time()) for author in authors)
        self.books = list(Book.objects.order_by("author_id"))
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {Author._meta.db_table}, {Book._meta.db_table}")
        return [(author.pk, author.email) for author in authors]

    def use_books(self, count: int) -> None:
        from observers_app.models import Author

        self.rows["book"] = self.books[:count]
        self.rows["author"] = list(Author.objects.order_by("pk")[:count])

    def transactions(self) -> int:
        """Transactions committed in the database so far (all connections)."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            return int(cursor.fetchone()[0])


def writer_main(pipe: Connection) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    import django

    django.setup()
    answer_commands(pipe, BooksWriter())


def rung(
    server: ObservedServer,
    clients: Clients,
    writer: WriterProcess,
    publication: str,
    params: list[list[Any]],
    tables: list[str],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """One paced round of writes per table, with the same N clients."""
    count = len(params)
    note(f"{publication}, {count} clients")
    writer.call("use_books", count)
    # Connected first (50 at a time), then every client subscribes at once: the issue's
    # "subscribing many at once", timed from the first sub sent to the last `ready`.
    opened = clients.grow(
        "ddp", HOST, server.port, count, publication=publication, params=params[::-1], hold=True
    )
    if opened["failures"] or clients.count != count:
        raise SystemExit(f"opened {clients.count} of {count}: {opened['failures']}")
    settle(server)
    subscribed = clients.subscribe_held()
    if subscribed["failures"] or subscribed["subscribed"] != count:
        raise SystemExit(f"subscribed {subscribed['subscribed']} of {count}: {subscribed['failures']}")
    observers = server.observers().get("by_publication", {}).get(publication, 0)
    # After thousands of subscriptions the heap trimmer (dddp.server.heap) finds what
    # their first reads freed, once, at its first look after the burst that finds the
    # free memory as it was at the look before: its full collection (half a second at
    # 10,000) was charged to the writes measured then. The writes start after it, once
    # a second goes by with under 20 ms of CPU.
    settled = settle(server, at_least=2 * TRIM_INTERVAL + 1.0)
    # What the open connections cost the process with nothing written (the event loop,
    # the ticker): part of every write's CPU below, at 1/rate of a second each.
    idle_cpu, idle_start = server.cpu_seconds(), time.monotonic()
    time.sleep(IDLE_SECONDS)
    idle_ms_per_s = 1000 * (server.cpu_seconds() - idle_cpu) / (time.monotonic() - idle_start)
    rounds = []
    for table in tables:
        time.sleep(1.0)  # (PostgreSQL's statistics are flushed at most once a second)
        before = writer.call("transactions")
        measured = paced_round(server, clients, writer, table, args)
        time.sleep(1.5)
        transactions = writer.call("transactions") - before - 2  # the two readings' own
        figures = merged([measured])
        figures.pop("latencies", None)
        rounds.append(
            {
                **figures,
                "clients": count,
                "observers": observers,
                "connect_s": opened["seconds"],
                "subscribe_s": subscribed["seconds"],
                "idle_cpu_ms_per_s": idle_ms_per_s,
                "settled_s": settled,
                "cpu_ms_per_write_net": figures["cpu_ms_per_write"] - idle_ms_per_s / args.rate,
                "other_transactions_per_write": (transactions - measured["writes"]) / measured["writes"],
            }
        )
    clients.drop()
    time.sleep(1.0 + count / 5000)  # the server ends the sessions and their observers
    return rounds


def settle(server: ObservedServer, at_least: float = 0.0) -> float:
    """Wait `at_least` seconds, then until a second passes with the server using under
    QUIET_CPU; the seconds waited."""
    start = time.monotonic()
    time.sleep(at_least)
    while time.monotonic() - start < at_least + MAX_SETTLE:
        before = server.cpu_seconds()
        time.sleep(1.0)
        if server.cpu_seconds() - before < QUIET_CPU:
            break
    return time.monotonic() - start


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"{args.rate:g} writes/s, {args.seconds:g} s per rung, each write concerning one client, "
        f"machine busy before: {results['config']['machine_busy_before']:.0%}",
        "",
        "publication              N   observers  connect  subscribe  p50 ms   p99 ms   max ms  CPU/write  "
        "settled  idle CPU  net CPU/write  other tx/write  received/owed",
    ]
    for publication, ladder in results["ladders"].items():
        for one in ladder:
            lines.append(
                f"{publication:<22} {one['clients']:>5}  {one['observers']:>9}  {one['connect_s']:5.1f} s"
                f"  {one['subscribe_s']:7.1f} s"
                f"  {one['p50_ms']:7.1f}  {one['p99_ms']:7.1f}  {one['max_ms']:7.1f}"
                f"  {one['cpu_ms_per_write']:6.2f} ms  {one['settled_s']:5.1f} s"
                f"  {one['idle_cpu_ms_per_s']:4.0f} ms/s"
                f"  {one['cpu_ms_per_write_net']:10.2f} ms  {one['other_transactions_per_write']:14.2f}"
                f"  {one['received']}/{one['owed']}"
            )
    lines.append("")
    for publication, ladder in results["ladders"].items():
        if not ladder:
            continue
        first = ladder[0]
        for one in ladder[1:]:
            p99 = one["p99_ms"] / first["p99_ms"]
            cpu = one["cpu_ms_per_write"] / first["cpu_ms_per_write"]
            net = one["cpu_ms_per_write_net"] / first["cpu_ms_per_write_net"]
            cpu_target = OWN_COLUMN_CPU_TARGET if publication == "BooksByAuthor" else P99_TARGET
            lines.append(
                f"{publication}, N = {one['clients']} against N = {first['clients']}: "
                f"p99 {p99:.2f}x (target <= {P99_TARGET}x: {'PASS' if p99 <= P99_TARGET else 'FAIL'}), "
                f"CPU/write {cpu:.2f}x (target <= {cpu_target}x: {'PASS' if cpu <= cpu_target else 'FAIL'}), "
                f"net of idle {net:.2f}x"
            )
    for publication, ladder in results["ladders"].items():
        if ladder and ladder[-1]["clients"] >= 10_000 and "/" not in publication:
            top = ladder[-1]
            seconds = top["subscribe_s"]
            verdict = "PASS" if seconds <= 10 else "FAIL"
            lines.append(
                f"{publication}: {top['clients']} connected clients subscribing at once with distinct "
                f"parameters, all ready in {seconds:.1f} s (target 10 s: {verdict}); "
                f"connecting them took {top['connect_s']:.1f} s before"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="1,100,1000,10000", help="clients per rung, BooksByAuthor")
    parser.add_argument(
        "--email-ladder", default="1,100,1000,10000", help="clients per rung, BooksByAuthorEmail"
    )
    parser.add_argument(
        "--no-author-writes",
        dest="author_writes",
        action="store_false",
        help="skip the round of author writes on each BooksByAuthorEmail rung",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second (default 50)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per rung (default 5)")
    parser.add_argument("--client-processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ladders = {
        "BooksByAuthor": [int(n) for n in args.ladder.split(",") if n],
        "BooksByAuthorEmail": [int(n) for n in args.email_ladder.split(",") if n],
    }
    ladders = {publication: ladder for publication, ladder in ladders.items() if ladder}
    env, busy_before = prepare(SETTINGS_MODULE)
    writer = WriterProcess(writer_main)
    server: ObservedServer | None = None
    clients: Clients | None = None
    results: dict[str, Any] = {"ladders": {}}
    try:
        writer.call("setup", 10, 0)
        authors = max(max(ladder, default=1) for ladder in ladders.values())
        note(f"{authors} authors and their books")
        made = writer.call("make_books", max(authors, 1))
        server = ObservedServer(env, SETTINGS_MODULE)
        clients = Clients(args.client_processes)
        for publication, ladder in ladders.items():
            column = 0 if publication == "BooksByAuthor" else 1
            tables = ["book"]
            if publication == "BooksByAuthorEmail" and args.author_writes:
                tables.append("author")
            for count in ladder:
                params = [[one[column]] for one in made[:count]]
                rounds = rung(server, clients, writer, publication, params, tables, args)
                for table, one in zip(tables, rounds, strict=True):
                    label = publication if table == "book" else f"{publication}/author"
                    results["ladders"].setdefault(label, []).append(one)
    finally:
        shut_down(clients, server, writer)
    results["config"] = {**vars(args), "cpus": os.cpu_count(), "machine_busy_before": busy_before}
    print(json.dumps(results, indent=2, default=str) if args.json else report(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
