"""Faults: the LISTEN connection dies while another process writes; clients still converge."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
import websocket
from django.db import connection

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess
from tests.testapp.models import Author, Book

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
