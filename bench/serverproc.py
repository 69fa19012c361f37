"""The dddp server under test, in its own process, and what /proc and PostgreSQL say about it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXAMPLE = REPO / "example"
LISTENING = re.compile(r"listening on http://([^:/]+):(\d+)/")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The server's graceful shutdown: DDDP_SHUTDOWN_TIMEOUT (10 s) for methods,
# 2 s for sessions to close, 1 s to stop the WSGI server; plus a margin.
SHUTDOWN_LIMIT = 20.0


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    pss_kib: int
    uss_kib: int  # pages only this process maps: what its exit would give back


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
    # utime and stime, fields 14 and 15 of proc(5); fields 1 and 2 are cut off.
    return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def listen_overflows() -> int:
    """Connections the kernel refused because a listen queue was full (all processes, since boot).

    A refused SYN is retried by the client after 1 s, then 3 s...: that is the
    usual cause of handshakes slower than a second on an idle machine.
    """
    with open("/proc/net/netstat") as netstat:
        lines = netstat.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:], strict=True))["ListenOverflows"])
    return 0


def open_files_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return -1


class Server:
    """A `python -m dddp` process serving the example; its log goes to a file nothing must drain."""

    def __init__(self, app_name: str, log_level: str, script: str | None = None, traced: bool = False):
        log_fd, self.log_path = tempfile.mkstemp(prefix="dddp-capacity-", suffix=".log")
        # libpq reads PGAPPNAME, so pg_stat_activity can tell this process's
        # connections from those of any other client of the same database.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PGAPPNAME": app_name}
        entry = [script] if script else ["-m", "dddp"]
        self.trace_prefix = ""
        if traced:
            entry = [str(BENCH / "traced_server.py")]
            self.trace_prefix = env["DDDP_TRACE_PREFIX"] = tempfile.mkdtemp(prefix="dddp-trace-") + "/trace"
        self._snapshots = 0
        settings = ["--settings", "example_project.settings", "--pythonpath", str(EXAMPLE)]
        self.process = subprocess.Popen(
            [sys.executable, *entry, *settings, "--log-level", log_level, "127.0.0.1:0"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
        )
        os.close(log_fd)  # the server has its own copy
        self.pid = self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return Path(self.log_path).read_text(errors="replace")[-chars:]

    def wait_until_listening(self, timeout: float = 60.0) -> int:
        """The port it listens on, from its log line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            match = LISTENING.search(Path(self.log_path).read_text(errors="replace"))
            if match:
                return int(match.group(2))
            time.sleep(0.1)
        if not self.running:
            raise SystemExit(
                f"the server exited ({self.process.returncode}) before listening:\n{self.log_tail()}"
            )
        raise SystemExit(f"the server did not start listening within {timeout:.0f}s:\n{self.log_tail()}")

    def snapshot(self, timeout: float = 300.0) -> Any:
        """A tracemalloc snapshot of the traced server (`traced_server.py` dumps one on SIGUSR1)."""
        import tracemalloc

        self._snapshots += 1
        path = Path(f"{self.trace_prefix}-{self._snapshots}.snap")
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline or not self.running:
                raise SystemExit(f"the traced server wrote no snapshot within {timeout:.0f}s")
            time.sleep(0.2)
        snapshot = tracemalloc.Snapshot.load(str(path))
        path.unlink()
        return snapshot

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM; (exit code, or None if it had to be killed; seconds it took)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.process.wait(SHUTDOWN_LIMIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.running:
            self.process.kill()
            self.process.wait()

    def discard_log(self) -> None:
        os.unlink(self.log_path)
        if self.trace_prefix:
            os.rmdir(os.path.dirname(self.trace_prefix))


def example_database() -> dict[str, Any]:
    """The example's DATABASES entry.

    With no DATABASE_URL this starts (or joins) the embedded PostgreSQL, which
    then stays up until this process exits too, across migrate and the server.
    """
    from dddp.database import database_settings

    settings: dict[str, Any] = database_settings(EXAMPLE / "pgdata")
    return settings


def manage(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the example's manage.py with `args`; its output, or exit saying why it failed."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"manage.py {args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def migrate() -> None:
    manage("migrate", "--noinput", "-v", "0")


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


# --- where the memory goes (--traced) ---------------------------------------------

#: Frames that only say "an import allocated": attribution looks past them.
_PLUMBING = ("<frozen ",)


def allocation_sites(before: Any, after: Any, connections: int, top: int = 20) -> list[dict[str, Any]]:
    """The allocation sites whose live bytes grew most, per connection, innermost frame first."""
    sites = []
    for stat in after.compare_to(before, "traceback")[:top]:
        frames = [f for f in stat.traceback if not f.filename.startswith(_PLUMBING)] or list(stat.traceback)
        # A traceback lists the oldest frame first; the allocating line is last.
        chain = [f"{_short(frame.filename)}:{frame.lineno}" for frame in reversed(frames)][:6]
        sites.append(
            {
                "bytes": round(stat.size_diff / connections, 1),
                "blocks": round(stat.count_diff / connections, 2),
                "where": chain,
            }
        )
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    sites.append({"bytes": round(total / connections, 1), "blocks": None, "where": ["(everything traced)"]})
    return sites


def _short(filename: str) -> str:
    """`gevent/pywsgi.py`, `dddp/server/session.py`, `logging/__init__.py`: paths people know."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    if filename.startswith(f"{REPO}/"):
        return filename[len(f"{REPO}/") :]
    return re.sub(r"^.*/lib/python3\.\d+/", "", filename)
