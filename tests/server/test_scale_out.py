"""Scale-out: two dddp processes, a third process writing; clients of both see the same data."""

from __future__ import annotations

import time
import uuid

import pytest
import websocket

from tests.ddp_client import DDPClient
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db(transaction=True)


def test_clients_of_two_servers_see_the_same_changes(start_server) -> None:  # type: ignore[no-untyped-def]
    first = start_server().wait_until_listening()
    second = start_server().wait_until_listening()
    author = Author.objects.create(name="Everywhere", email=f"{uuid.uuid4().hex[:10]}@example.com")
    with DDPClient(first.ws_url) as one, DDPClient(second.ws_url) as two:
        for client in (one, two):
            client.connect()
            client.sub("BooksByAuthorEmail", author.email, id="s")
        books = [Book.objects.create(title=f"Book {n}", author=author) for n in range(5)]
        books[0].title = "Renamed"
        books[0].save()
        books[1].delete()
        expected = {str(b.pk): b.title for b in Book.objects.filter(author=author)}
        for client in (one, two):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                view = {k: v["title"] for k, v in client.collections.get("testapp.book", {}).items()}
                if view == expected:
                    break
                try:
                    client.recv(timeout=0.5)
                except websocket.WebSocketTimeoutException:
                    pass
            assert {k: v["title"] for k, v in client.collections["testapp.book"].items()} == expected
        assert one.collections == two.collections
