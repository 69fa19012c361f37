"""example/run.py, the README's first command: it says at once when its port is taken."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.server_process import REPO

RUN = [sys.executable, str(REPO / "example" / "run.py")]


def test_a_taken_port_is_said_before_anything_is_set_up() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*RUN, f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=30, cwd=REPO
        )
    assert result.returncode == 1
    assert result.stdout == ""  # no "open http://..." line, no virtualenv or migrate output
    assert result.stderr == (
        f"example/run.py: cannot listen on 127.0.0.1:{port}: Address already in use; "
        f"give another [[HOST:]PORT], e.g. python3 example/run.py {port + 1}\n"
    )


def test_a_malformed_address_is_a_usage_error() -> None:
    result = subprocess.run([*RUN, "127.0.0.1:http"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr == (
        "example/run.py: expected [host:]port with a port from 0 to 65535, got '127.0.0.1:http'\n"
    )
