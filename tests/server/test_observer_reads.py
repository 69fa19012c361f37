"""An Observer reads a publication in one plain query when its rows are few (a
server-side cursor costs four round trips in autocommit), and every row of a big
one through a cursor, in chunks."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from dddp.api import API
from dddp.server import compiled as compiled_module
from dddp.server.observer import Observer
from tests.testapp.ddp import AllNotes
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db


@pytest.fixture
def chunk_of_five(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(compiled_module, "CHUNK_ROWS", 5)
    return 5


@pytest.fixture
def cursors(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One item per server-side cursor opened."""
    opened: list[None] = []
    chunked_cursor = connection.chunked_cursor

    def counted() -> Any:
        opened.append(None)
        return chunked_cursor()

    monkeypatch.setattr(connection, "chunked_cursor", counted)
    return opened


@pytest.mark.parametrize("rows", [0, 1, 4])
def test_fewer_rows_than_a_chunk_are_read_in_one_query(
    chunk_of_five: int, cursors: list[None], rows: int, django_assert_num_queries: Any
) -> None:
    Note.objects.bulk_create(Note(text=f"n{n}") for n in range(rows))
    observer = Observer(API, AllNotes, [], None)
    with django_assert_num_queries(1):
        results = observer.read()
    assert cursors == []
    assert sorted(doc["text"] for doc in results[0].values()) == sorted(f"n{n}" for n in range(rows))


@pytest.mark.parametrize("rows", [5, 6, 23])
def test_a_chunk_or_more_is_read_whole_through_a_cursor(
    chunk_of_five: int, cursors: list[None], rows: int, django_assert_num_queries: Any
) -> None:
    Note.objects.bulk_create(Note(text=f"n{n}") for n in range(rows))
    observer = Observer(API, AllNotes, [], None)
    with django_assert_num_queries(2):  # the first chunk's, then the cursor's
        results = observer.read()
    assert len(cursors) == 1
    assert sorted(doc["text"] for doc in results[0].values()) == sorted(f"n{n}" for n in range(rows))
