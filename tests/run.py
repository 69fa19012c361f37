#!/usr/bin/env python3
"""Run dddp's tests on a fresh machine: `python3 tests/run.py [pytest arguments]`.

It sets itself up: the virtualenv of example/run.py with the test extras, the
Node DDP clients of tests/node (`npm ci`, when npm is there; without Node those
tests are skipped and say why), then pytest. PostgreSQL is embedded unless
DATABASE_URL names a server.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "tests" / "node"


def load_example_runner():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("example_run", REPO / "example" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_node_clients() -> None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        print("Node.js not found: the tests with npm DDP clients will be skipped", flush=True)
        return
    wanted = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = NODE_DIR / "node_modules" / ".dddp-installed"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print("installing the Node DDP clients (npm ci in tests/node)", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)
    stamp.write_text(wanted)


def main(argv: list[str]) -> int:
    python = load_example_runner().ensure_virtualenv("test")
    ensure_node_clients()
    os.chdir(REPO)
    return subprocess.run([str(python), "-m", "pytest", *argv]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
