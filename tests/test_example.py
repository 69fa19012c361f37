"""The bookstore example of the brief, run as a newcomer runs it: migrate, shell, dddp."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from dddp.protocol.random import RandomStreams
from tests.databases import scratch_database
from tests.ddp_client import DDPClient
from tests.server_process import REPO, ServerProcess

MANAGE = [sys.executable, str(REPO / "example" / "manage.py")]
DATABASE = "dddp_example_test"


def manage(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["DATABASE_URL"] = url
    result = subprocess.run([*MANAGE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def example_database_url(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A fresh database for the example on the tests' PostgreSQL, migrated as the README says."""
    with scratch_database(DATABASE, django_db_blocker) as url:
        manage("migrate", "--no-input", url=url)
        yield url


@pytest.fixture(scope="module")
def example_server(start_server, example_database_url: str) -> ServerProcess:  # type: ignore[no-untyped-def]
    manage(
        "shell",
        "-c",
        "from bookstore.models import Author; "
        "Author.objects.create(name='Janet Evanovich', email='janet@evanovich.com')",
        url=example_database_url,
    )
    return start_server(
        "dddp", "127.0.0.1:0", command=MANAGE, DATABASE_URL=example_database_url, DJANGO_SETTINGS_MODULE=None
    ).wait_until_listening()


def test_example_serves_its_page_on_the_ddp_port(example_server: ServerProcess) -> None:
    with urllib.request.urlopen(example_server.http_url + "/", timeout=5) as response:
        page = response.read().decode()
    assert "1 author(s), 0 book(s)" in page
    assert "/websocket" in page


def test_example_publications_of_the_brief_answer_ready(example_server: ServerProcess) -> None:
    with DDPClient(example_server.ws_url) as ddp:
        ddp.connect()
        assert ddp.sub("AllBooks", id="all")[-1] == {"msg": "ready", "subs": ["all"]}
        assert ddp.sub("BooksByAuthorEmail", "janet@evanovich.com", id="janet")[-1] == {
            "msg": "ready",
            "subs": ["janet"],
        }
        missing_param = ddp.sub("BooksByAuthorEmail", id="bad")[-1]
        assert missing_param["msg"] == "nosub" and missing_param["error"]["error"] == 400


def test_example_method_writes_what_another_process_reads(
    example_server: ServerProcess, example_database_url: str
) -> None:
    with DDPClient(example_server.ws_url) as ddp:
        ddp.connect()
        book_id = ddp.call("add_book", "One for the Money", "janet@evanovich.com", id="add")["result"][
            "result"
        ]
        assert ddp.call("count_books", id="count")["result"]["result"] == 1
        unknown = ddp.call("add_book", "Nobody's Book", "nobody@example.com", id="bad")["result"]["error"]
        assert unknown["error"] == 404 and "nobody@example.com" in unknown["reason"]
    shell = manage(
        "shell",
        "-c",
        f"from bookstore.models import Book; print(Book.objects.get(pk={book_id!r}).title)",
        url=example_database_url,
    )
    assert shell.stdout.strip().splitlines()[-1] == "One for the Money"


def test_example_books_take_the_ids_the_clients_stub_drew(example_server: ServerProcess) -> None:
    """R-2, R-6: a book the example's add_book makes has the id of its call's randomSeed."""
    seed = "0123456789abcdef0123"
    with DDPClient(example_server.ws_url) as ddp:
        ddp.connect()
        reply = ddp.call("add_book", "Two for the Dough", "janet@evanovich.com", id="add", randomSeed=seed)
    assert reply["result"]["result"] == RandomStreams(seed).stream("/collection/bookstore.book").id()


def test_example_books_insert_makes_the_row_with_the_stubs_id(
    example_server: ServerProcess, example_database_url: str
) -> None:
    """M-1: a logged-in Meteor client's Books.insert({...}) makes the row under the id its stub
    drew, as the model permissions allow (a superuser here); an anonymous one is refused."""
    seed = "b1d5e3e2b5a0f3c1e9d7"
    expected = RandomStreams(seed).stream("/collection/bookstore.book").id()
    name = f"boss-{seed[:6]}"
    manage(
        "shell",
        "-c",
        f"from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_superuser({name!r}, password='store keys')",
        url=example_database_url,
    )
    digest = {"digest": hashlib.sha256(b"store keys").hexdigest(), "algorithm": "sha-256"}
    with DDPClient(example_server.ws_url) as ddp:
        ddp.connect()
        ddp.sub("AllBooks", id="all")
        janet = next(
            doc_id
            for doc_id, author in ddp.collections["bookstore.author"].items()
            if author["email"] == "janet@evanovich.com"
        )
        doc = {"title": "Three to Get Deadly", "author": janet}
        refused = ddp.call("/bookstore.book/insert", doc, id="anon", randomSeed=seed)
        assert refused["result"]["error"]["reason"] == "Access denied"

        login = ddp.call("login", {"user": {"username": name}, "password": digest}, id="login")
        assert "error" not in login["result"], login
        reply = ddp.call("/bookstore.book/insert", doc, id="insert", randomSeed=seed)

    assert reply["result"]["result"] == expected
    kinds = [(m["msg"], m.get("id")) for m in reply["messages"]]
    assert kinds.index(("added", expected)) < kinds.index(("updated", None))  # D-82
    assert ddp.collections["bookstore.book"][expected]["title"] == "Three to Get Deadly"
