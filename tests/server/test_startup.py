"""Starting `dddp` as the brief does: settings found from the project's folder, clear one-line errors.

Each test writes a small project (`mysite/settings.py`) into a scratch folder
and runs the `dddp` console script from there, as a user runs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

CONSOLE_SCRIPT = str(Path(sys.executable).parent / "dddp")

SETTINGS = """\
import os
from dddp.database import parse_database_url

SECRET_KEY = "startup-tests"
ALLOWED_HOSTS = ["127.0.0.1"]  # with DEBUG off, Django (and dddp) serve no other host
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "dddp"]
DATABASES = {"default": parse_database_url(os.environ["DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""


def make_project(folder: Path, extra: str = "") -> Path:
    """`folder/mysite/settings.py`: the settings above, then `extra`."""
    package = folder / "mysite"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS + textwrap.dedent(extra))
    return folder


def run_dddp(
    folder: Path, *args: str, settings: str = "mysite.settings", **env: str
) -> subprocess.CompletedProcess[str]:
    """The console script, run from `folder` with DJANGO_SETTINGS_MODULE, until it exits."""
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    return subprocess.run(
        [CONSOLE_SCRIPT, *(args or ["127.0.0.1:0"])],
        cwd=folder,
        env={**base, "DJANGO_SETTINGS_MODULE": settings, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_dddp(folder: Path, database_url: str, **env: str | None) -> ServerProcess:
    return ServerProcess(
        ["127.0.0.1:0"],
        {
            "DJANGO_SETTINGS_MODULE": "mysite.settings",
            "DATABASE_URL": database_url,
            "PYTHONPATH": None,
            **env,
        },
        command=[CONSOLE_SCRIPT],
        cwd=folder,
    ).wait_until_listening()


def test_the_console_script_finds_settings_in_the_current_directory(
    tmp_path: Path, test_database_url: str
) -> None:
    """The brief's `DJANGO_SETTINGS_MODULE=myproject.settings dddp`, with no --pythonpath."""
    server = start_dddp(make_project(tmp_path), test_database_url)
    try:
        with DDPClient(server.ws_url) as ddp:
            assert ddp.connect()["msg"] == "connected"
    finally:
        assert server.stop() == 0


def test_pythonsafepath_keeps_the_current_directory_out(tmp_path: Path, test_database_url: str) -> None:
    """Python's own opt-out (-P, PYTHONSAFEPATH) is honoured."""
    result = run_dddp(make_project(tmp_path), DATABASE_URL=test_database_url, PYTHONSAFEPATH="1")
    assert result.returncode == 1
    assert result.stderr == (
        "dddp: cannot load Django settings 'mysite.settings': there is no module 'mysite' on the "
        "Python path (run dddp from the folder that holds 'mysite', or pass --pythonpath DIR)\n"
    )


def test_a_misspelled_settings_module_names_the_module_that_is_missing(
    tmp_path: Path, test_database_url: str
) -> None:
    result = run_dddp(make_project(tmp_path), settings="mysite.setings", DATABASE_URL=test_database_url)
    assert result.returncode == 1
    assert result.stderr == (
        f"dddp: cannot load Django settings 'mysite.setings': there is no module 'setings' in "
        f"{tmp_path / 'mysite'}\n"
    )


def test_a_settings_module_that_fails_says_what_failed_and_where(
    tmp_path: Path, test_database_url: str
) -> None:
    project = make_project(tmp_path, "import not_installed_anywhere\n")
    line = SETTINGS.count("\n") + 1
    result = run_dddp(project, DATABASE_URL=test_database_url)
    assert result.returncode == 1
    assert result.stderr == (
        "dddp: cannot load Django settings 'mysite.settings': ModuleNotFoundError: "
        f"No module named 'not_installed_anywhere' ({os.path.join('mysite', 'settings.py')}, line {line})\n"
    )


def test_a_syntax_error_in_settings_names_its_line(tmp_path: Path, test_database_url: str) -> None:
    project = make_project(tmp_path, "DEBUG = (\n")
    result = run_dddp(project, DATABASE_URL=test_database_url)
    assert result.returncode == 1
    line = SETTINGS.count("\n") + 1
    assert "SyntaxError: '(' was never closed" in result.stderr
    assert f"(mysite/settings.py, line {line})\n" in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_app_that_fails_to_load_is_named(tmp_path: Path, test_database_url: str) -> None:
    project = make_project(tmp_path, "INSTALLED_APPS = [*INSTALLED_APPS, 'bookstore']\n")
    (project / "bookstore").mkdir()
    (project / "bookstore" / "__init__.py").write_text("")
    (project / "bookstore" / "ddp.py").write_text("from dddp.api import API\nAPI.regster([])\n")
    result = run_dddp(project, DATABASE_URL=test_database_url)
    assert result.returncode == 1
    assert result.stderr == (
        "dddp: cannot set up Django with settings 'mysite.settings': AttributeError: "
        "'Registry' object has no attribute 'regster' (bookstore/ddp.py, line 2)\n"
    )


def test_system_check_warnings_are_logged_at_start(tmp_path: Path, test_database_url: str) -> None:
    server = start_dddp(make_project(tmp_path, "DDDP_HEARTBEAT_INTERVL = 5\n"), test_database_url)
    try:
        server.wait_for_log(
            r"WARNING dddp\.server: system check dddp\.W001 Unknown setting DDDP_HEARTBEAT_INTERVL: "
            r"dddp will ignore it\. \(hint: Known settings: .*DDDP_HEARTBEAT_INTERVAL"
        )
    finally:
        assert server.stop() == 0


def test_silenced_system_checks_are_not_logged(tmp_path: Path, test_database_url: str) -> None:
    extra = "DDDP_HEARTBEAT_INTERVL = 5\nSILENCED_SYSTEM_CHECKS = ['dddp.W001']\n"
    server = start_dddp(make_project(tmp_path, extra), test_database_url)
    try:
        assert "system check" not in server.text
    finally:
        assert server.stop() == 0


def test_a_system_check_error_stops_the_start_in_one_line(tmp_path: Path, test_database_url: str) -> None:
    result = run_dddp(make_project(tmp_path, "DDDP_METHOD_WORKERS = 0\n"), DATABASE_URL=test_database_url)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "dddp: system check failed: dddp.E002 DDDP_METHOD_WORKERS must be a positive int, got 0. (hint: "
    )
    assert result.stderr.count("\n") == 1


def test_a_taken_port_is_one_line_and_nothing_else(tmp_path: Path, test_database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_dddp(make_project(tmp_path), f"127.0.0.1:{port}", DATABASE_URL=test_database_url)
    assert result.returncode == 1
    assert result.stderr == f"dddp: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("postgresql://nobody@127.0.0.1:1/nothing", "'nothing' at 127.0.0.1:1 as user 'nobody'"),
        ("postgresql:///nothing?host=/nonexistent&port=5999", "'nothing' at socket /nonexistent port 5999"),
    ],
    ids=["tcp", "unix socket"],
)
def test_an_unreachable_database_is_one_line_naming_where_it_tried(
    tmp_path: Path, url: str, address: str
) -> None:
    result = run_dddp(make_project(tmp_path), DATABASE_URL=url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"dddp: cannot connect to the database {address}: ")
    assert result.stderr.count("\n") == 1
