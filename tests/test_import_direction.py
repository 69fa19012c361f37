"""The one-way import rule (docs/design.md, "Layers and imports").

dddp.protocol imports no Django, no gevent, no sockets; the dddp.server package
itself imports neither gevent nor Django (its entry point monkey-patches first).
Each check runs in a fresh interpreter so other tests' imports cannot hide a leak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROTOCOL_MODULES = [
    "dddp.protocol",
    "dddp.protocol.connection",
    "dddp.protocol.messages",
    "dddp.protocol.ejson",
    "dddp.protocol.errors",
    "dddp.protocol.ids",
]


def loaded_after_import(*modules: str) -> set[str]:
    """Top-level names of all modules loaded by a fresh interpreter importing `modules`."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", PROTOCOL_MODULES)
def test_protocol_module_imports_no_django_gevent_or_sockets(module: str) -> None:
    """docs/design.md: dddp/protocol imports no Django, no gevent, no sockets."""
    loaded = loaded_after_import(module)
    assert "dddp" in loaded
    forbidden = {"django", "gevent", "geventwebsocket", "psycopg2", "psycogreen", "socket", "_socket"}
    assert not loaded & forbidden


def test_all_protocol_modules_together_import_no_django_gevent_or_psycopg2() -> None:
    loaded = loaded_after_import(*PROTOCOL_MODULES)
    assert not loaded & {"django", "gevent", "psycopg2"}


def test_server_package_imports_neither_gevent_nor_django() -> None:
    """docs/design.md: importing dddp.server (the package only) must not import gevent or Django,
    so its entry point can monkey-patch before they load."""
    loaded = loaded_after_import("dddp.server")
    assert "dddp" in loaded
    assert not loaded & {"django", "gevent", "geventwebsocket"}
