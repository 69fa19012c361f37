"""First reads: observers of one shape waiting together are read by one query per
queryset, and each gets exactly what its own read would give it."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable
from typing import Any

import gevent
import gevent.event
import pytest
from django.db import DataError
from gevent import GreenletExit

from dddp.api import API, Publication
from dddp.server import first_reads as first_reads_module
from dddp.server.compiled import compile_queries
from dddp.server.first_reads import FirstReads, read_shape
from dddp.server.observer import Observer, publication_queries, read_together
from tests.testapp import ddp
from tests.testapp.models import Author, Book, Tag


def observed(publication: type[Publication], *params: Any) -> Observer:
    """An observer as the hub makes it: its querysets compiled once, for its key and reads."""
    returned = publication_queries(API, publication, list(params), None)
    return Observer(API, publication, list(params), None, returned, compile_queries(returned))


class FirstBooks(Publication):
    """Sliced: which rows it holds depends on other rows, not on its WHERE clause alone."""

    def get_queries(self, author_id: int) -> list[Any]:
        return [Book.objects.filter(author=author_id).order_by("pk")[:1]]


def library(rng: random.Random) -> tuple[list[Author], list[Tag]]:
    authors = [Author.objects.create(name=f"a{n}", email=f"a{n}-{rng.random()}@x") for n in range(6)]
    tags = [Tag.objects.create(name=f"tag{n}") for n in range(3)]
    for _ in range(30):
        book = Book.objects.create(title=f"t{rng.randint(0, 4)}", author=rng.choice(authors))
        book.tags.add(*rng.sample(tags, rng.randint(0, 3)))  # (0 to 3: a join repeats a row)
    return authors, tags


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(3))
def test_observers_read_together_get_what_each_would_read_alone(seed: int) -> None:
    rng = random.Random(seed)
    authors, tags = library(rng)
    emails = [author.email for author in authors] + ["nobody@x"]
    titles = [f"t{n}" for n in range(5)]
    plans: list[tuple[type[Publication], list[Any]]] = []
    for author in authors:
        plans += [(ddp.BooksByAuthor, [author.pk]), (ddp.BooksByAuthor, [author.pk, rng.choice(titles)])]
    plans += [(ddp.BooksByAuthorEmail, [email]) for email in emails]  # through a join
    plans += [(ddp.BooksOfAuthorEmail, [email, rng.choice(tags).name]) for email in emails]  # and tags
    plans += [(ddp.BooksTitledTagged, [title, tag.name]) for title in titles for tag in tags]
    plans += [(ddp.BooksTitled, [rng.sample(titles, 2)]) for _ in range(6)]
    groups: dict[Hashable, list[Observer]] = defaultdict(list)
    for publication, params in plans:
        observer = observed(publication, *params)
        shape = read_shape(observer)
        assert shape is not None, (publication, params)
        groups[shape].append(observer)
    assert len(groups) == 6 and all(len(group) > 1 for group in groups.values())
    for group in groups.values():
        alone = [observer.read() for observer in group]
        assert read_together(group) == alone
    assert any(rows for group in groups.values() for rows in read_together(group))


@pytest.mark.django_db
def test_observers_of_other_sql_or_of_sql_their_where_does_not_decide_are_read_apart() -> None:
    author = Author.objects.create(name="a", email="a@x")
    by_author = [observed(ddp.BooksByAuthor, pk) for pk in (author.pk, author.pk + 1)]
    assert read_shape(by_author[0]) == read_shape(by_author[1])
    assert read_shape(observed(ddp.BooksByAuthor, author.pk, "t")) != read_shape(by_author[0])
    assert read_shape(observed(FirstBooks, author.pk)) is None  # sliced
    assert read_shape(observed(ddp.BooksTitled, [])) is None  # no SQL at all: `title IN ()`


@pytest.fixture
def counted_together(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of observers of each read_together call."""
    calls: list[int] = []

    def counting(observers: list[Observer]) -> Any:
        calls.append(len(observers))
        return read_together(observers)

    monkeypatch.setattr(first_reads_module, "read_together", counting)
    return calls


class Blocker:
    """Holds a loader (as a slow first read would) until released."""

    def __init__(self) -> None:
        self.released = gevent.event.Event()

    def read(self) -> list[Any]:
        self.released.wait()
        return []


def busy_loader(reads: FirstReads) -> tuple[Blocker, gevent.Greenlet]:
    blocker = Blocker()
    greenlet = gevent.spawn(reads.read, blocker, None)
    gevent.sleep(0.01)  # the loader is reading it
    return blocker, greenlet


def read_all(reads: FirstReads, observers: list[Observer]) -> list[Any]:
    greenlets = [gevent.spawn(reads.read, observer, read_shape(observer)) for observer in observers]
    gevent.joinall(greenlets, timeout=10)
    return [greenlet.get(block=False) for greenlet in greenlets]


@pytest.mark.django_db(transaction=True)
def test_reads_that_wait_for_a_busy_loader_are_read_together(counted_together: list[int]) -> None:
    authors, _tags = library(random.Random(7))
    reads = FirstReads(1)
    try:
        blocker, busy = busy_loader(reads)
        observers = [observed(ddp.BooksByAuthor, author.pk) for author in authors]
        waiting = [gevent.spawn(reads.read, o, read_shape(o)) for o in observers]
        gevent.sleep(0.01)
        assert counted_together == [] and not any(greenlet.ready() for greenlet in waiting)
        blocker.released.set()
        gevent.joinall([busy, *waiting], timeout=10)
        results = [greenlet.get(block=False) for greenlet in waiting]
        assert counted_together == [len(authors)]  # one read for all, after the slow one
        assert results == [observer.read() for observer in observers]
        # With the loader idle, a read runs at once, alone.
        lone = observed(ddp.BooksByAuthor, authors[0].pk)
        assert read_all(reads, [lone]) == [lone.read()] and counted_together[-1] == 1
    finally:
        reads.stop(1.0)


@pytest.mark.django_db(transaction=True)
def test_a_read_together_that_fails_reads_each_alone_so_each_gets_its_own_outcome() -> None:
    """FragileBooks divides by zero on a book of 13 pages: its observer for that book's
    author fails, alone or not; the others read together with it must not."""
    fragile, sound = (
        Author.objects.create(name="f", email="f@x"),
        Author.objects.create(name="s", email="s@x"),
    )
    Book.objects.create(title="thirteen", author=fragile, pages=13)
    Book.objects.create(title="fine", author=sound, pages=20)
    observers = [observed(ddp.FragileBooks, email) for email in ("s@x", "f@x", "nobody@x")]
    with pytest.raises(DataError):
        observers[1].read()
    expected = [observers[0].read(), None, observers[2].read()]
    assert expected[0] and len(next(iter(expected[0]))) == 1  # the sound author's book
    reads = FirstReads(1)
    try:
        blocker, busy = busy_loader(reads)
        greenlets = [gevent.spawn(reads.read, o, read_shape(o)) for o in observers]
        gevent.sleep(0.01)
        blocker.released.set()
        gevent.joinall([busy, *greenlets], timeout=10)
        assert greenlets[0].get(block=False) == expected[0]
        assert isinstance(greenlets[1].exception, DataError)
        assert greenlets[2].get(block=False) == expected[2]
    finally:
        reads.stop(1.0)


@pytest.mark.django_db(transaction=True)
def test_stopping_abandons_the_reads_still_waiting() -> None:
    author = Author.objects.create(name="a", email="a@x")
    reads = FirstReads(1)
    _blocker, busy = busy_loader(reads)
    observer = observed(ddp.BooksByAuthor, author.pk)
    waiting = gevent.spawn(reads.read, observer, read_shape(observer))
    gevent.sleep(0.05)
    reads.stop(1.0)
    gevent.joinall([busy, waiting], timeout=5)
    assert isinstance(waiting.value, GreenletExit)  # (gevent's quiet end of a greenlet)
    assert busy.ready() and waiting.ready()
