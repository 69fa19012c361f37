"""Capacity benchmark: N idle DDP sessions on one dddp server process.

    python bench/capacity.py --connections 19000 [--hold 20] [--json]
    python bench/capacity.py --transport websocket,sockjs   # both, one after the other, and the ratio
    python bench/capacity.py --transport xhr                # 1,000 xhr-polling sessions

Starts the bookstore example's server (`python -m dddp`) on a free port, warms
it up, then has a few client worker processes open N connections, each
connected and subscribed to `AllBooks`, and hold them (answering pings). With
all N open it reports the server's memory per connection, its open files, its
PostgreSQL connections, and how fast a brand-new client gets connect + sub +
method answered. Then it closes everything and times a SIGTERM shutdown.

`--stage tcp|websocket|connect` stops each connection earlier, to split the
memory per connection into transport, WebSocket and DDP session parts;
`--traced` lists the source lines that hold it. Everything runs on 127.0.0.1
and every wait has a time limit.

`--transport websocket|sockjs|xhr` (default websocket: the raw `/websocket`)
chooses what the held clients and the new ones speak: the SockJS websocket
(`/sockjs/<server>/<session>/websocket`), or SockJS xhr-polling (a session
per client, with two keep-alive connections, its long poll always open; by
default 1,000 of them). A comma-separated list runs each in turn, each on a
fresh server with fresh client processes, and ends with the memory per
connection of each next to the first's (target for the SockJS websocket:
at most 1.2x the raw WebSocket's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from dataclasses import asdict
from typing import Any

from clientpool import (
    STAGES,
    TRANSPORTS,
    OpenOrder,
    Workers,
    merge_counts,
    open_channel,
    raise_open_files_limit,
)
from serverproc import (
    Memory,
    Server,
    allocation_sites,
    cpu_seconds,
    database_connections,
    example_database,
    listen_overflows,
    memory,
    migrate,
    open_files,
    open_files_limit,
)
from sockjs_clients import XhrPolling
from wsclient import DDPClient

HOST = "127.0.0.1"

# The targets for one server process.
TARGET_CONNECTIONS = 19_000
TARGET_XHR_SESSIONS = 1_000
TARGET_KIB_PER_CONNECTION = 15.0
#: SockJS websocket's memory per connection / the raw WebSocket's, at most.
TARGET_SOCKJS_RATIO = 1.2
# The hub's loader greenlets (dddp.server.hub.LOADERS) open their database
# connections at the first subscriptions, not at start: allowed on top of the
# baseline, as they do not grow with the number of clients.
FIRST_READ_CONNECTIONS = 2
TARGET_ANSWER_SECONDS = 1.0

#: A new client's steps, as `full_session` times them (`upgrade`: for xhr-polling, the open poll).
STEPS = ("tcp", "upgrade", "connect", "sub", "method")


# --- brand-new clients -------------------------------------------------------------


async def full_session(port: int, method_id: str = "m1", transport: str = "websocket") -> dict[str, float]:
    """Seconds for each step of a fresh client's TCP + upgrade + DDP connect + sub + method."""
    steps: dict[str, float] = {}
    started = last = time.perf_counter()

    def step(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[name] = now - last
        last = now

    channel = await open_channel(transport, HOST, port, stage="tcp" if transport != "xhr" else "sub")
    step("tcp" if transport != "xhr" else "upgrade")  # xhr: TCP and the open poll, both in one
    try:
        if not isinstance(channel, XhrPolling):
            await channel.upgrade(HOST, port)
            step("upgrade")
        client = DDPClient(channel)
        await client.connect()
        step("connect")
        documents = await client.subscribe("s1", "AllBooks", [])
        step("sub")
        await client.call(method_id, "count_books", [])
        step("method")
    finally:
        if isinstance(channel, XhrPolling):
            await channel.leave()  # with a poll open: the server may end the session at once
        else:
            channel.close()
    steps["total"] = last - started
    steps["documents"] = documents  # what each session's subscription holds
    return steps


def probe(port: int, times: int, transport: str, timeout: float = 10.0) -> list[dict[str, float]]:
    """`times` new clients one after the other; a failed or timed-out one is `{"failed": 1.0}`."""

    async def run() -> list[dict[str, float]]:
        results = []
        for _ in range(times):
            try:
                results.append(await asyncio.wait_for(full_session(port, transport=transport), timeout))
            except Exception as exc:  # noqa: BLE001 - a failed probe is a figure, not a crash
                results.append({"failed": 1.0})
                print(f"a new client failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return results

    return asyncio.run(run())


def warm_up(port: int, transport: str, sessions: int = 20) -> None:
    """Concurrent full sessions, so lazy imports and the method workers' DB connections are done."""

    async def run() -> None:
        opened = (full_session(port, f"m{n}", transport) for n in range(sessions))
        await asyncio.wait_for(asyncio.gather(*opened), 60)

    asyncio.run(run())


# --- the run ---------------------------------------------------------------------


class CapacityRun:
    """One benchmark run; each phase adds its figures to `self.figures`."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.figures: dict[str, Any] = {
            "transport": args.transport,
            "connections": args.connections,
            "stage": args.stage,
            "client_workers": args.workers,
        }
        self.app_name = f"dddp-capacity-{uuid.uuid4().hex[:8]}"
        self.db: dict[str, Any] = {}
        self.port = 0
        self.baseline = Memory(0, 0, 0)
        self.baseline_snapshot: Any = None
        self.peak_rss_kib = 0

    def run(self) -> dict[str, Any]:
        self.figures["client_open_files_limit"] = raise_open_files_limit()  # before anything inherits it
        self.workers = Workers(self.args.workers)  # spawned first, while this process is small
        try:
            self.db = example_database()
            if not self.args.no_migrate:
                migrate()
            self.server = Server(
                self.app_name, self.args.server_log_level, self.args.server_script, self.args.traced
            )
            try:
                self.start()
                self.open_all()
                self.measure_loaded()
                self.hold()
                self.close_all()
                self.stop()
            except SystemExit as exc:
                raise SystemExit(f"{exc}\n(the server's whole log: {self.server.log_path})") from None
            finally:
                self.server.kill()
        finally:
            self.workers.stop()
        if self.healthy() and not self.args.keep_log:
            self.server.discard_log()
        else:
            self.figures["server_log"] = self.server.log_path
        return self.figures

    def start(self) -> None:
        pid = self.server.pid
        self.port = self.server.wait_until_listening()
        self.figures["server_open_files_limit"] = open_files_limit(pid)
        warm_up(self.port, self.args.transport)
        time.sleep(1.0)  # the warm-up sessions' greenlets end and are freed
        self.baseline = memory(pid)
        self.peak_rss_kib = self.baseline.rss_kib
        if self.args.traced:
            self.baseline_snapshot = self.server.snapshot()
        self.figures["baseline"] = asdict(self.baseline)
        self.figures["baseline_open_files"] = open_files(pid)
        self.figures["baseline_db_connections"] = database_connections(self.db, self.app_name)

    def sample(self) -> None:
        if self.server.running:
            self.peak_rss_kib = max(self.peak_rss_kib, memory(self.server.pid).rss_kib)

    def open_all(self) -> None:
        args = self.args
        time_limit = args.ramp_limit or 60 + args.connections / 100
        order = OpenOrder(
            HOST,
            self.port,
            args.stage,
            args.connections,
            args.concurrency,
            args.handshake_timeout,
            time_limit,
            args.transport,
        )
        cpu_before = cpu_seconds(self.server.pid)
        overflows_before = listen_overflows()
        started = time.monotonic()
        summaries = self.workers.open(order, time_limit + args.handshake_timeout + 30, self.sample)
        seconds = time.monotonic() - started
        self.figures["listen_overflows"] = listen_overflows() - overflows_before
        self.require_server("during the ramp")
        opened = sum(summary["opened"] for summary in summaries)
        self.figures.update(
            opened=opened,
            failed=args.connections - opened,
            failures=merge_counts([summary["failures"] for summary in summaries]),
            ramp_seconds=round(seconds, 2),
            connect_rate_per_second=round(opened / seconds, 1),
            slowest_handshake_seconds=round(max(summary["slowest_handshake"] for summary in summaries), 3),
            ramp_cpu_seconds=round(cpu_seconds(self.server.pid) - cpu_before, 2),
        )

    def measure_loaded(self) -> None:
        pid = self.server.pid
        time.sleep(1.0)  # the last handshakes' short-lived greenlets end
        self.figures["loaded"] = asdict(memory(pid))
        self.figures["open_files"] = open_files(pid)
        self.figures["db_connections"] = database_connections(self.db, self.app_name)
        if self.baseline_snapshot is not None and self.figures["opened"]:
            after = self.server.snapshot()
            self.figures["allocations_per_connection"] = allocation_sites(
                self.baseline_snapshot, after, self.figures["opened"]
            )

    def hold(self) -> None:
        """Stay idle past a heartbeat (the server pings, the clients answer), probing meanwhile.

        A new client every `--probe-every` seconds, not a burst of them: a pause
        of the server (a full garbage collection, a heartbeat sweep) lasts a
        second or two every so often, and only probes spread out can land in one.
        """
        cpu_before = cpu_seconds(self.server.pid)
        until = time.monotonic() + self.args.hold
        answers: list[dict[str, float]] = []
        while time.monotonic() < until and self.server.running:
            next_probe = time.monotonic() + self.args.probe_every
            answers.extend(probe(self.port, 1, self.args.transport))
            self.sample()
            time.sleep(max(0.0, min(next_probe, until) - time.monotonic()))
        self.require_server("while holding the connections")
        held = memory(self.server.pid)
        self.peak_rss_kib = max(self.peak_rss_kib, held.rss_kib)
        answered = [steps for steps in answers if "failed" not in steps]
        totals = [steps["total"] for steps in answered] or [float("nan")]
        slowest = max(answered, key=lambda steps: steps["total"], default={})
        self.figures.update(
            probes=len(answers),
            probes_failed=len(answers) - len(answered),
            answer_seconds_median=round(statistics.median(totals), 4),
            answer_seconds_max=round(max(totals), 4),
            answers_over_target=sum(1 for total in totals if total > TARGET_ANSWER_SECONDS),
            slowest_answer_steps={name: round(seconds, 4) for name, seconds in slowest.items()},
            documents_per_subscription=answered[0]["documents"] if answered else None,
            held=asdict(held),
            hold_seconds=self.args.hold,
            hold_cpu_seconds=round(cpu_seconds(self.server.pid) - cpu_before, 2),
            peak_rss_kib=self.peak_rss_kib,
        )
        opened = self.figures["opened"]
        if opened:
            self.figures["kib_per_connection"] = {
                kind: round(
                    (getattr(held, f"{kind}_kib") - getattr(self.baseline, f"{kind}_kib")) / opened, 2
                )
                for kind in ("rss", "pss", "uss")
            }

    def close_all(self) -> None:
        statuses = self.workers.close(timeout=60)
        self.figures.update(
            still_open_after_hold=sum(status["open"] for status in statuses),
            dropped=merge_counts([status["dropped"] for status in statuses]),
            pings_answered=sum(status["pings_answered"] for status in statuses),
            polls_open=sum(status["polls_open"] for status in statuses),
        )
        # The server notices the closes; wait until it has let go of the sockets.
        pid = self.server.pid
        deadline = time.monotonic() + 60
        while open_files(pid) > self.figures["baseline_open_files"] + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.figures["open_files_after_close"] = open_files(pid)
        after_close = memory(pid)
        self.figures["after_close"] = asdict(after_close)
        # Closing thousands of sessions takes memory too (close frames, log lines).
        self.figures["peak_rss_kib"] = max(self.figures["peak_rss_kib"], after_close.rss_kib)

    def stop(self) -> None:
        self.figures["server_cpu_seconds"] = round(cpu_seconds(self.server.pid), 2)
        code, seconds = self.server.stop()
        self.figures["exit_code"] = code
        self.figures["shutdown_seconds"] = round(seconds, 2)

    def require_server(self, when: str) -> None:
        if not self.server.running:
            raise SystemExit(f"the server exited {when}:\n{self.server.log_tail()}")

    def healthy(self) -> bool:
        figures = self.figures
        return not figures.get("failed") and not figures.get("dropped") and figures.get("exit_code") == 0


# --- the report ------------------------------------------------------------------


def verdicts(figures: dict[str, Any]) -> dict[str, bool]:
    per_connection = figures.get("kib_per_connection", {}).get("rss", float("inf"))
    db_connections = figures["db_connections"]
    held = {f"held all {figures['connections']}": figures["still_open_after_hold"] == figures["connections"]}
    if figures["transport"] == "xhr":  # the memory target is for WebSocket connections; xhr's is a figure
        held["each with its long poll open after the hold"] = figures["polls_open"] == figures["connections"]
    else:
        held[f"<= {TARGET_KIB_PER_CONNECTION:g} KiB RSS per connection"] = (
            per_connection <= TARGET_KIB_PER_CONNECTION
        )
    return {
        **held,
        f"every new client answered within {TARGET_ANSWER_SECONDS:g} s": not figures["probes_failed"]
        and figures["answer_seconds_max"] <= TARGET_ANSWER_SECONDS,
        "no database connection per client": db_connections is not None
        and db_connections <= (figures["baseline_db_connections"] or 0) + FIRST_READ_CONNECTIONS,
        "clean shutdown (exit 0)": figures["exit_code"] == 0,
    }


def table(figures: dict[str, Any]) -> str:
    f = figures

    def mib(key: str) -> str:
        return f"{f[key]['rss_kib'] / 1024:.1f}"

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f}"

    per = f.get("kib_per_connection", {})
    steps = STEPS if f["transport"] != "xhr" else STEPS[1:]
    rows = [
        ("transport", TRANSPORT_NAMES[f["transport"]]),
        ("connections asked / opened / failed", f"{f['connections']} / {f['opened']} / {f['failed']}"),
        ("stage held", f["stage"]),
        ("documents per subscription (AllBooks)", f"{f.get('documents_per_subscription')}"),
        ("ramp: seconds, connections/s", f"{f['ramp_seconds']} s, {f['connect_rate_per_second']}/s"),
        (
            "slowest handshake, listen queue overflows",
            f"{f['slowest_handshake_seconds']} s, {f['listen_overflows']}",
        ),
        (
            "server RSS: baseline / all open / after hold",
            f"{mib('baseline')} / {mib('loaded')} / {mib('held')} MiB",
        ),
        ("server RSS: after close / peak", f"{mib('after_close')} / {f['peak_rss_kib'] / 1024:.1f} MiB"),
        ("per connection: RSS / PSS / USS", f"{per.get('rss')} / {per.get('pss')} / {per.get('uss')} KiB"),
        (
            "server open files: baseline / all open / closed",
            (
                f"{f['baseline_open_files']} / {f['open_files']} / {f['open_files_after_close']}"
                f" (limit {f['server_open_files_limit']})"
            ),
        ),
        (
            "server PostgreSQL connections: baseline / all open",
            f"{f['baseline_db_connections']} / {f['db_connections']}",
        ),
        (
            "new clients while holding: count, median / max, over 1 s, failed",
            (
                f"{f['probes']}, {ms(f['answer_seconds_median'])} / {ms(f['answer_seconds_max'])} ms,"
                f" {f['answers_over_target']}, {f['probes_failed']}"
            ),
        ),
        (
            "slowest new client's tcp, upgrade, connect, sub, method"
            if f["transport"] != "xhr"
            else "slowest new client's tcp + open poll, connect, sub, method",
            ", ".join(ms(f["slowest_answer_steps"].get(step, 0)) for step in steps) + " ms",
        ),
        ("still open after hold / dropped", f"{f['still_open_after_hold']} / {sum(f['dropped'].values())}"),
        ("hold: seconds, pings answered", f"{f['hold_seconds']} s, {f['pings_answered']}"),
        *(
            [("long polls open after the hold", f"{f['polls_open']} of {f['still_open_after_hold']}")]
            if f["transport"] == "xhr"
            else []
        ),
        (
            "server CPU: ramp / hold / whole run",
            f"{f['ramp_cpu_seconds']} / {f['hold_cpu_seconds']} / {f['server_cpu_seconds']} s",
        ),
        ("shutdown: exit code, seconds", f"{f['exit_code']}, {f['shutdown_seconds']} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for kind, counts in (("failed", f["failures"]), ("dropped", f["dropped"])):
        lines.extend(
            f"  {kind}: {count} x {reason}" for reason, count in sorted(counts.items(), key=lambda i: -i[1])
        )
    if "server_log" in f:
        lines.append(f"  server log kept in {f['server_log']}")
    for site in f.get("allocations_per_connection", []):
        lines.append(f"  traced {site['bytes']:>8.1f} B/connection  {' <- '.join(site['where'][:4])}")
    lines.append("")
    lines.extend(f"[{'ok' if passed else 'MISSED'}] {name}" for name, passed in verdicts(f).items())
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Capacity benchmark: N idle DDP sessions on one dddp process."
    )
    add = parser.add_argument
    add(
        "--transport",
        type=transports,
        default=["websocket"],
        help="websocket (raw /websocket, the default), sockjs (the SockJS websocket), xhr (SockJS "
        "xhr-polling), or a comma-separated list of them: each in turn, then the ratios",
    )
    add(
        "--connections",
        type=int,
        help=f"connections (xhr: sessions) to hold ({TARGET_CONNECTIONS}; xhr {TARGET_XHR_SESSIONS})",
    )
    add("--hold", type=float, default=30.0, help="seconds to hold them all open (30: two heartbeats)")
    add("--stage", choices=STAGES, default="sub", help="how far each connection goes (default sub)")
    add("--workers", type=int, default=3, help="client processes (3)")
    add("--concurrency", type=int, default=100, help="handshakes in flight per client process (100)")
    add("--handshake-timeout", type=float, default=15.0, help="seconds allowed per connection (15)")
    add("--ramp-limit", type=float, default=0.0, help="seconds allowed to open them all (60 + N/100)")
    add("--probe-every", type=float, default=1.0, help="seconds between new clients while holding (1)")
    add(
        "--server-log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the server's --log-level (INFO, its default)",
    )
    add(
        "--server-script", metavar="PATH", help="run PATH instead of `python -m dddp`, e.g. a patched variant"
    )
    add("--traced", action="store_true", help="trace the server's allocations (slow; inflates its memory)")
    add("--keep-log", action="store_true", help="keep the server's log file even after a clean run")
    add("--no-migrate", action="store_true", help="skip `manage.py migrate`")
    add("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def transports(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRANSPORTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(TRANSPORTS)}, got {text!r}")
    return names


TRANSPORT_NAMES = {
    "websocket": "raw WebSocket (/websocket)",
    "sockjs": "SockJS websocket (/sockjs/<server>/<session>/websocket)",
    "xhr": "SockJS xhr-polling (/sockjs/<server>/<session>/xhr + xhr_send)",
}


def comparison(runs: list[dict[str, Any]]) -> str:
    """Each transport's memory per connection next to the first one's."""
    first = runs[0]
    lines = [f"Memory per connection (RSS / USS), against {first['transport']}'s:"]
    base = first.get("kib_per_connection", {})
    for figures in runs:
        per = figures.get("kib_per_connection", {})
        if not per or not base:
            lines.append(f"  {figures['transport']:<9}  (nothing measured)")
            continue
        ratio = per["rss"] / base["rss"]
        line = (
            f"  {figures['transport']:<9}  {per['rss']:.2f} / {per['uss']:.2f} KiB"
            f" for {figures['opened']:,}  ratio {ratio:.2f} (USS {per['uss'] / base['uss']:.2f})"
        )
        if figures["transport"] == "sockjs" and first["transport"] == "websocket":
            line += f"  [{'ok' if ratio <= TARGET_SOCKJS_RATIO else 'MISSED'}] <= {TARGET_SOCKJS_RATIO:g}x"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "xhr" in args.transport and args.stage == "tcp":
        raise SystemExit("xhr-polling has no `tcp` stage")
    runs = []
    for transport in args.transport:
        connections = args.connections or (TARGET_XHR_SESSIONS if transport == "xhr" else TARGET_CONNECTIONS)
        one = argparse.Namespace(**{**vars(args), "transport": transport, "connections": connections})
        if len(args.transport) > 1:
            print(f"[{time.strftime('%H:%M:%S')}] {transport}: {connections} connections", file=sys.stderr)
        figures = CapacityRun(one).run()
        figures["verdicts"] = verdicts(figures)
        runs.append(figures)
        if not args.json:
            print(table(figures) + "\n", flush=True)
    if args.json:
        print(json.dumps(runs[0] if len(runs) == 1 else runs, indent=2))
    elif len(runs) > 1:
        print(comparison(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
