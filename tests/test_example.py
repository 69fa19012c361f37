"""The bookstore example of the brief, run as a newcomer runs it: migrate, shell, dddp."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

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
        f"from bookstore.models import Book; print(Book.objects.get(pk={book_id}).title)",
        url=example_database_url,
    )
    assert shell.stdout.strip().splitlines()[-1] == "One for the Money"
