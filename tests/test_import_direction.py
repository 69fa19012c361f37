"""The one-way import rule (docs/design.md, "Layers and imports").

dddp.protocol imports no Django, no gevent, no sockets; the Django side (the
rest of dddp, outside dddp.server) never imports gevent or dddp.server; the
dddp.server package itself imports neither gevent nor Django (its entry point
monkey-patches first). Every module is found on disk, so a new one is checked
too. Each check runs in a fresh interpreter so other tests' imports cannot
hide a leak.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def modules_of(package: str) -> list[str]:
    """`package` and every module under it, as found on disk."""
    path = [str(REPO / package.replace(".", "/"))]
    return [package, *sorted(m.name for m in pkgutil.walk_packages(path, prefix=package + "."))]


PROTOCOL_MODULES = modules_of("dddp.protocol")
#: The Django side: dddp outside dddp.server. `python -m dddp` is the server's
#: entry point, and `manage.py dddp` launches the server: it reads the server's
#: options module (standard library only), and must still not import gevent.
DJANGO_SIDE_MODULES = [
    name
    for name in modules_of("dddp")
    if not name.startswith(("dddp.server", "dddp.protocol")) and name != "dddp.__main__"
]
LAUNCHER = "dddp.management.commands.dddp"

DJANGO_SETUP = """\
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "dddp"],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "never-connected"}},
)
django.setup()
"""


def test_the_module_lists_are_found_on_disk() -> None:
    assert {"dddp.protocol.websocket", "dddp.protocol.mergebox"} <= set(PROTOCOL_MODULES)
    assert {"dddp.api", "dddp.signals", "dddp.embedded", LAUNCHER} <= set(DJANGO_SIDE_MODULES)


def loaded_after_import(*modules: str, django: bool = False, full: bool = False) -> set[str]:
    """Names of all modules loaded by a fresh interpreter importing `modules`.

    Top-level names, or full dotted names with `full`. With `django`, Django is
    set up first, as a project's process would have it, with dddp as its only
    app of ours (the test apps' own code may import what it likes).
    """
    setup = DJANGO_SETUP if django else ""
    names = "m" if full else "m.split('.')[0]"
    code = (
        f"import importlib, json, sys\n{setup}"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{{names} for m in sys.modules}})))\n"
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


@pytest.mark.parametrize("module", DJANGO_SIDE_MODULES)
def test_django_side_module_imports_neither_gevent_nor_the_server(module: str) -> None:
    """docs/design.md: the Django side never imports gevent or dddp.server."""
    loaded = loaded_after_import(module, django=True, full=True)
    assert module in loaded
    assert not {name for name in loaded if name.split(".")[0] in ("gevent", "geventwebsocket")}
    server = {name for name in loaded if name.startswith("dddp.server")}
    if module == LAUNCHER:
        assert server <= {"dddp.server", "dddp.server.options"}
    else:
        assert not server
