#!/usr/bin/env python3
"""Run dddp's tests on a fresh machine: `python3 tests/run.py [pytest arguments]`.

It sets itself up: the virtualenv of example/run.py with the test extras, the
Node DDP clients of tests/node (`npm ci`, when npm is there; without Node those
tests are skipped and say why), nginx and Chromium from Debian's packages when
run as root (without them the proxy and browser tests are skipped and say why),
then pytest. PostgreSQL is embedded unless
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


#: What some tests run from Debian's packages: the binary, its package, what for.
DEBIAN_TOOLS = [
    ("/usr/sbin/nginx", "nginx", "the tests of docs/production.rst's proxy configuration"),
    ("/usr/bin/chromium", "chromium", "the browser tests (tests/server/test_browser.py)"),
]


def ensure_debian_tools() -> None:
    """nginx and Chromium from Debian's packages, as root; without them their tests are skipped."""
    missing = [(package, why) for path, package, why in DEBIAN_TOOLS if not Path(path).exists()]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        for package, why in missing:
            print(f"{package} not found: {why} will be skipped", flush=True)
        return
    packages = [package for package, _ in missing]
    purposes = "; ".join(why for _, why in missing)
    print(f"installing {', '.join(packages)} (apt-get) for {purposes}", flush=True)
    # Installing must not start Debian's default nginx site on port 80: the tests
    # run nginx themselves. policy-rc.d's exit status 101 forbids service starts.
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        quiet = {"stdout": subprocess.DEVNULL}
        subprocess.run(["apt-get", "update", "-qq"], check=True, **quiet)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            **quiet,
        )
    finally:
        if ours:
            policy.unlink()


def main(argv: list[str]) -> int:
    python = load_example_runner().ensure_virtualenv("test")
    ensure_node_clients()
    ensure_debian_tools()
    os.chdir(REPO)
    return subprocess.run([str(python), "-m", "pytest", *argv]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
