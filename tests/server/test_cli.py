"""The `dddp` command: its three entry points and its errors (its stop: test_shutdown.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ddp_client import DDPClient
from tests.server_process import REPO, ServerProcess

CONSOLE_SCRIPT = str(Path(sys.executable).parent / "dddp")
EXAMPLE_MANAGE = str(REPO / "example" / "manage.py")

ENTRY_POINTS = {
    "console script": [CONSOLE_SCRIPT],
    "python -m dddp": [sys.executable, "-m", "dddp"],
    "manage.py dddp": [sys.executable, EXAMPLE_MANAGE, "dddp"],
}


def run(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a command as a user would: without the DJANGO_SETTINGS_MODULE pytest-django set."""
    import os

    base = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        command, cwd=REPO, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "command",
    [[CONSOLE_SCRIPT], [sys.executable, "-m", "dddp"], [sys.executable, EXAMPLE_MANAGE, "dddp"]],
    ids=["console script", "python -m dddp", "manage.py dddp"],
)
def test_help_documents_every_option(command: list[str]) -> None:
    result = run([*command, "--help"], env={"DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused"})
    assert result.returncode == 0, result.stderr
    for option in (
        "[HOST:]PORT",
        "--settings",
        "--pythonpath",
        "--no-django",
        "--log-level",
        "--sockjs-test-services",
        "SIGTERM",
    ):
        assert option in result.stdout


def test_the_sockjs_test_services_are_off_by_default_and_documented_as_a_conformance_tool() -> None:
    from dddp.server.options import build_parser, parse_options

    assert parse_options(["127.0.0.1:0"]).sockjs_test_services is False
    assert parse_options(["--sockjs-test-services", "127.0.0.1:0"]).sockjs_test_services is True
    text = " ".join(build_parser().format_help().split())
    assert "--sockjs-test-services a conformance tool for the sockjs-protocol test suite" in text
    assert "off by default, not for production" in text


def test_manage_py_dddp_mounts_the_sockjs_test_services(start_server) -> None:  # type: ignore[no-untyped-def]
    """The issue's `python example/manage.py dddp --sockjs-test-services 127.0.0.1:PORT`."""
    import urllib.request

    server = start_server(
        "--settings",
        "tests.settings",
        "--pythonpath",
        ".",
        "--sockjs-test-services",
        "127.0.0.1:0",
        command=ENTRY_POINTS["manage.py dddp"],
    ).wait_until_listening()
    try:
        server.wait_for_log(r"SockJS conformance test services mounted at /echo, /close, ")
        for prefix in ("/echo", "/close", "/disabled_websocket_echo", "/cookie_needed_echo"):
            with urllib.request.urlopen(server.http_url + prefix, timeout=5) as response:
                assert response.read() == b"Welcome to SockJS!\n"
    finally:
        assert server.stop() == 0


def test_port_already_taken_is_one_line_and_exit_1(test_database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            [sys.executable, "-m", "dddp", "--settings", "tests.settings", f"127.0.0.1:{port}"],
            env={"DATABASE_URL": test_database_url},
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_database_is_one_line_and_exit_1() -> None:
    result = run(
        [sys.executable, "-m", "dddp", "--settings", "tests.settings", "127.0.0.1:0"],
        env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing"},
    )
    assert result.returncode == 1
    assert "dddp: cannot connect to the database 'nothing' at 127.0.0.1:1 as user 'nobody': " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_settings_is_one_line_and_exit_1() -> None:
    result = run([sys.executable, "-m", "dddp", "127.0.0.1:0"])
    assert result.returncode == 1
    assert "no Django settings: pass --settings MODULE or set DJANGO_SETTINGS_MODULE" in result.stderr


def test_bad_port_is_a_usage_error() -> None:
    result = run([sys.executable, "-m", "dddp", "127.0.0.1:http"])
    assert result.returncode == 2
    assert "expected [host:]port" in result.stderr


@pytest.mark.parametrize("entry", list(ENTRY_POINTS), ids=list(ENTRY_POINTS))
def test_every_entry_point_patches_for_gevent_before_django(start_server, entry: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server(
        "--settings", "tests.settings", "--pythonpath", ".", "127.0.0.1:0", command=ENTRY_POINTS[entry]
    ).wait_until_listening()
    try:
        with DDPClient(server.ws_url) as ddp:
            ddp.connect()
            state = ddp.call("patch_state")["result"]["result"]
        assert state == {
            "socket": True,
            "threading": True,
            "psycopg2_waits_for_gevent": True,
            "django_imported_after_patch": True,
        }
    finally:
        assert server.stop() == 0


def test_no_django_serves_only_ddp(start_server) -> None:  # type: ignore[no-untyped-def]
    import urllib.error
    import urllib.request

    server: ServerProcess = start_server("--settings", "tests.settings", "--no-django", "127.0.0.1:0")
    server.wait_until_listening()
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(server.http_url + "/hello/", timeout=5)
    assert raised.value.code == 404
    with DDPClient(server.ws_url) as ddp:
        assert ddp.connect()["msg"] == "connected"
