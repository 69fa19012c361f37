"""dddp.embedded: the embedded PostgreSQL stops when the last process using it has gone.

Each test uses one data folder of its module (initdb runs once) and real
processes that join the server through `database_settings`, as a project's
settings module does, then leave it in each way a process can end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_processes

REPO = Path(__file__).resolve().parent.parent

#: Joins the server of the folder argv[1], prints "joined", then does what argv[2] says.
USER = textwrap.dedent(
    """
    import os, sys, time
    from dddp.database import database_settings
    database_settings(sys.argv[1], env="DDDP_NO_SUCH_VARIABLE")
    print("joined", flush=True)
    how = sys.argv[2]
    if how == "exec":  # as manage.py dddp replaces itself, then exits before loading settings
        os.execv(sys.executable, [sys.executable, "-c", "pass"])
    elif how == "wait":
        sys.stdin.readline()
    """
)


def wait_until_stopped(data_dir: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while postgres_processes(data_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = (tmp_path_factory.mktemp("embedded") / "pgdata").resolve()
    yield folder
    for process in postgres_processes(folder):  # a failed test must not leave it running
        process.terminate()


def start_user(data_dir: Path, how: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(data_dir), how],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "joined\n"
    return process


def test_the_server_stops_when_its_only_user_exits(data_dir: Path) -> None:
    user = start_user(data_dir, "exit")
    assert user.wait(30) == 0
    assert wait_until_stopped(data_dir)


def test_the_server_stops_after_a_user_replaced_itself_by_exec(data_dir: Path) -> None:
    """`manage.py dddp` execs the server; its atexit handlers are gone with the old image."""
    user = start_user(data_dir, "exec")
    assert user.wait(30) == 0
    assert wait_until_stopped(data_dir)


def test_the_server_stops_after_its_user_was_killed(data_dir: Path) -> None:
    user = start_user(data_dir, "wait")
    assert postgres_processes(data_dir)
    user.send_signal(signal.SIGKILL)
    user.wait(30)
    assert wait_until_stopped(data_dir)


def test_the_server_runs_while_any_user_remains(data_dir: Path) -> None:
    first = start_user(data_dir, "wait")
    second = start_user(data_dir, "wait")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    time.sleep(2.5)  # more than two rounds of the watcher
    assert postgres_processes(data_dir), "stopped while a process still used it"
    second.communicate("\n", timeout=30)  # ends normally
    assert second.returncode == 0
    assert wait_until_stopped(data_dir)


def test_a_dead_user_left_in_the_list_does_not_keep_the_server_for_ever(data_dir: Path) -> None:
    """A list that names a dead process (a crash before dddp.embedded existed) is cleaned."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    handles = data_dir / ".handle_pids.json"
    handles.write_text(f"[{int(dead.stdout)}]")
    user = start_user(data_dir, "exit")
    assert user.wait(30) == 0
    assert wait_until_stopped(data_dir)
