"""Helpers for tests that run Node.js scripts against the npm packages in tests/node.

Install them with ``cd tests/node && npm ci``. Tests marked ``requires_node`` are
skipped, with the reason shown, when ``node`` or ``tests/node/node_modules`` is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"


def node_available() -> str | None:
    """Why Node tests cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "no `node` binary on PATH"
    if not (NODE_DIR / "node_modules").is_dir():
        return f"{NODE_DIR / 'node_modules'} is missing: run `npm ci` in {NODE_DIR}"
    return None


requires_node = pytest.mark.skipif(
    node_available() is not None, reason=f"Node tests skipped: {node_available()}"
)


def run_node(
    script: str, *args: str, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``node -e script args...`` in NODE_DIR (so ``require()`` finds the packages).

    In the script ``process.argv.slice(1)`` is ``args``; ``stdin`` is fed to it.
    Raises AssertionError with the exit code and stderr when node fails.
    """
    node = shutil.which("node")
    if node is None:
        raise AssertionError("no `node` binary on PATH")
    proc = subprocess.run(
        [node, "-e", script, "--", *args],
        cwd=NODE_DIR,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"node exited with code {proc.returncode}\n"
            f"--- stderr ---\n{proc.stderr}\n--- stdout ---\n{proc.stdout}"
        )
    return proc
