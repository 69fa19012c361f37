"""Observers: one per (publication, params, user), shared by sessions, LISTENing only while needed."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess
from tests.testapp.models import Author, Book, Note, Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def debug_server(start_server) -> ServerProcess:  # type: ignore[no-untyped-def]
    return start_server(
        "--settings", "tests.settings", "--log-level", "DEBUG", "127.0.0.1:0"
    ).wait_until_listening()


def count(server: ServerProcess, pattern: str, start: int, settle: float = 0.3) -> int:
    """How many log lines since `start` match (after letting the log reader catch up)."""
    import re

    time.sleep(settle)
    return sum(bool(re.search(pattern, line)) for line in server.log[start:])


def test_one_observer_serves_every_session_with_the_same_subscription(debug_server: ServerProcess) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    author = Author.objects.create(name="Shared", email=email)
    start = len(debug_server.log)
    clients = [DDPClient(debug_server.ws_url) for _ in range(3)]
    try:
        for client in clients:
            client.connect()
            assert client.sub("BooksByAuthorEmail", email, id="s")[-1]["msg"] == "ready"
        Book.objects.create(title="For all three", author=author)
        for client in clients:
            assert client.recv()["msg"] == "added"
        assert count(debug_server, r"observing BooksByAuthorEmail", start) == 1
        assert count(debug_server, r"LISTEN dddp_testapp_book", start) == 1
        for client in clients[:2]:
            client.send({"msg": "unsub", "id": "s"})
            client.recv_until(lambda m: m["msg"] == "nosub")
        time.sleep(0.2)
        assert count(debug_server, r"stopped observing", start) == 0
        clients[2].send({"msg": "unsub", "id": "s"})
        clients[2].recv_until(lambda m: m["msg"] == "nosub")
        debug_server.wait_for_log(r"stopped observing BooksByAuthorEmail", start=start)
        debug_server.wait_for_log(r"UNLISTEN dddp_testapp_book", start=start)
    finally:
        for client in clients:
            client.close()


def test_different_params_get_different_observers(debug_server: ServerProcess) -> None:
    start = len(debug_server.log)
    with DDPClient(debug_server.ws_url) as one, DDPClient(debug_server.ws_url) as two:
        one.connect()
        two.connect()
        one.sub("BooksByAuthorEmail", "a@example.com", id="s")
        two.sub("BooksByAuthorEmail", "b@example.com", id="s")
        assert count(debug_server, r"observing BooksByAuthorEmail", start) == 2


def test_closing_the_connection_releases_its_observers(debug_server: ServerProcess) -> None:
    start = len(debug_server.log)
    with DDPClient(debug_server.ws_url) as client:
        client.connect()
        client.sub("LongBooks", 123_456, id="s")
    debug_server.wait_for_log(r"stopped observing LongBooks", start=start)


# --- first reads run beside the hub --------------------------------------------------------


def test_a_slow_first_read_holds_up_no_other_subscription(server: ServerProcess) -> None:
    """While one publication's first read runs, other observers' changes still go out."""
    tag = Tag.objects.create(name="slow to read")
    note = Note.objects.create(text="watched")
    with DDPClient(server.ws_url) as watcher, DDPClient(server.ws_url) as newcomer:
        watcher.connect()
        watcher.sub("AllNotes", id="n")
        newcomer.connect()
        newcomer.send({"msg": "sub", "name": "SlowTags", "params": [3], "id": "slow"})
        time.sleep(0.5)  # its first read is under way, for 3 s
        note.text = "changed meanwhile"
        note.save()
        watcher.recv_until(lambda m: m.get("msg") == "changed" and m.get("id") == str(note.pk), timeout=2.0)
        newcomer.recv_until(lambda m: m.get("msg") == "ready", timeout=15)
        assert newcomer.collections["testapp.tag"][str(tag.pk)] == {"name": "slow to read"}


def test_subscriptions_queued_behind_busy_loaders_each_get_exactly_their_own_rows(
    server: ServerProcess,
) -> None:
    """Two slow first reads hold both loaders; thirty subscriptions with their own
    parameters queue meanwhile, and are read together (dddp.server.first_reads). Each
    client gets exactly its own rows, a write made while they waited included."""
    prefix = uuid.uuid4().hex[:8]
    authors = [Author.objects.create(name=f"a{n}", email=f"{prefix}-{n}@example.com") for n in range(30)]
    for n, author in enumerate(authors):
        for k in range(n % 3):
            Book.objects.create(title=f"{prefix} {n}.{k}", author=author)
    slow = [DDPClient(server.ws_url) for _ in range(2)]
    clients = [DDPClient(server.ws_url) for _ in authors]
    try:
        for client in [*slow, *clients]:
            client.connect()
        for number, client in enumerate(slow):
            client.send({"msg": "sub", "name": "SlowTags", "params": [1.5], "id": f"slow{number}"})
        time.sleep(0.4)  # both loaders are reading
        for client, author in zip(clients, authors, strict=True):
            client.send({"msg": "sub", "name": "BooksByAuthorEmail", "params": [author.email], "id": "b"})
        late = Book.objects.create(title=f"{prefix} written while they waited", author=authors[0])
        for client in clients:
            client.recv_until(lambda m: m.get("msg") == "ready", timeout=15)
        for client, author in zip(clients, authors, strict=True):
            books = client.collections_view().get("testapp.book", {})
            assert set(books) == {str(pk) for pk in author.books.values_list("pk", flat=True)}
            assert set(client.collections_view()["testapp.author"]) == {str(author.pk)}
        assert str(late.pk) in clients[0].collections_view()["testapp.book"]
    finally:
        for client in [*slow, *clients]:
            client.close()


def test_changes_during_a_first_read_reach_the_new_subscriber(server: ServerProcess) -> None:
    """The read's snapshot predates them: they are applied after it, before `ready`."""
    renamed = Tag.objects.create(name="before the read")
    with DDPClient(server.ws_url) as client:
        client.connect()
        client.send({"msg": "sub", "name": "SlowTags", "params": [1], "id": "slow"})
        time.sleep(0.4)  # the read's query has begun: these are not in its result
        renamed.name = "renamed during the read"
        renamed.save()
        Tag.objects.create(name="added during the read")
        client.recv_until(lambda m: m.get("msg") == "ready", timeout=15)
        expected = {str(tag.pk): {"name": tag.name} for tag in Tag.objects.all()}
        assert client.collections["testapp.tag"] == expected


def test_while_the_hub_waits_on_a_slow_query_pings_and_method_results_go_on(server: ServerProcess) -> None:
    """The hub's membership query of a batch (here SlowTags', 1 s) yields to the event loop:
    another connection's ping is answered and its method returns meanwhile; the slow
    observer's change arrives after its query."""
    Tag.objects.create(name="first")
    with DDPClient(server.ws_url) as slow, DDPClient(server.ws_url) as other:
        slow.connect()
        slow.sub("SlowTags", 1)  # (the first read takes 1 s)
        other.connect()
        tag = Tag.objects.create(name="read slowly")  # the hub checks it with a slow query
        time.sleep(0.3)  # that query is under way
        started = time.monotonic()
        other.send({"msg": "ping", "id": "p"})
        other.recv_until(lambda m: m.get("msg") == "pong" and m.get("id") == "p", timeout=5)
        pong_after = time.monotonic() - started
        started = time.monotonic()
        assert other.call("add", 2, 3)["result"]["result"] == 5
        result_after = time.monotonic() - started
        slow.recv_until(lambda m: m.get("msg") == "added" and m.get("id") == str(tag.pk), timeout=10)
        waited = time.monotonic() - started
    assert pong_after < 0.4 and result_after < 0.4, (pong_after, result_after)
    assert waited > 0.2  # the change really waited on the slow query, after the ping and the call
