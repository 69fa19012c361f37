#!/usr/bin/env python3
"""Start the bookstore example on a fresh machine: `python3 example/run.py [[HOST:]PORT]`.

It sets itself up: a virtualenv in .venv (made once, refreshed when
pyproject.toml changes), the project installed into it, the database migrated
(an embedded PostgreSQL in example/pgdata unless DATABASE_URL is set), then
`manage.py dddp` serves the site and DDP on one port (default 127.0.0.1:8000).
tests/run.py uses `ensure_virtualenv` from here too.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("DDDP_VENV", REPO / ".venv"))


def ensure_virtualenv(extras: str) -> Path:
    """The virtualenv's python, with the project and `extras` installed in it."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating a virtualenv in {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    wanted = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".dddp-installed-{extras}"
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"installing dddp[{extras}] into {VENV}", flush=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                f"{REPO}[{extras}]",
            ],
            check=True,
        )
        stamp.write_text(wanted)
    return python


def port_is_free(host: str, port: int) -> str | None:
    """None if `host:port` can be listened on now, else why not."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))  # for the one parser of [[HOST:]PORT]; it needs only the stdlib
    from argparse import ArgumentTypeError

    from dddp.server.options import DEFAULT_HOST, DEFAULT_PORT, parse_addrport

    has_address = bool(argv) and not argv[0].startswith("-")
    address = argv[0] if has_address else f"{DEFAULT_HOST}:{DEFAULT_PORT}"
    options = argv[1:] if has_address else argv
    try:
        host, port = parse_addrport(address)
    except ArgumentTypeError as exc:
        print(f"example/run.py: {exc}", file=sys.stderr)
        return 2
    # Before the set-up and the "open ..." line: a taken port is said at once.
    why = None if "-h" in options or "--help" in options else port_is_free(host, port)
    if why:
        print(
            f"example/run.py: cannot listen on {host}:{port}: {why}; "
            f"give another [[HOST:]PORT], e.g. python3 example/run.py {port + 1}",
            file=sys.stderr,
        )
        return 1
    python = ensure_virtualenv("example")
    manage = str(REPO / "example" / "manage.py")
    subprocess.run([str(python), manage, "migrate", "--no-input", "--verbosity", "0"], check=True)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if port == 0:
        print("bookstore example: dddp picks a free port and logs its address below", flush=True)
    else:
        print(f"bookstore example: open http://{shown}/ (DDP at ws://{shown}/websocket)", flush=True)
    os.execv(str(python), [str(python), manage, "dddp", shown, *options])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
