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


def main(argv: list[str]) -> int:
    python = ensure_virtualenv("example")
    manage = str(REPO / "example" / "manage.py")
    subprocess.run([str(python), manage, "migrate", "--no-input", "--verbosity", "0"], check=True)
    address = argv[0] if argv else "127.0.0.1:8000"
    print(f"bookstore example: open http://{address}/ (DDP at ws://{address}/websocket)", flush=True)
    os.execv(str(python), [str(python), manage, "dddp", address, *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
