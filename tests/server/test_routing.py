"""Routes: a change reaches every observer its old or new row concerns, and spares the rest.

In-process: observers are fakes with the queries' routing attributes (their
terms come from real querysets, `dddp.matching.index_term`), applying changes
as an Observer does; a world of rows in memory says what each should hold.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from dddp.changes import Change
from dddp.matching import DOCUMENT_ID, IndexTerm, Through
from dddp.server.routing import Routes

BOOKS = "testapp.book"
TAGS = "testapp.tag"
AUTHORS = "testapp.author"


def term(field_name: str, *values: Any) -> IndexTerm:
    return IndexTerm(field_name, frozenset(values), lambda value: value)


@dataclass
class FakeQuery:
    """What Routes reads of an ObservedQuery; `member` says what the query holds."""

    name: str
    term: IndexTerm | None
    member: Callable[[dict[str, Any]], bool]
    matcher: Any = True  # not None: decided on the row's own columns
    related: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    via: str | None = None


class FakeObserver:
    def __init__(self, *queries: FakeQuery, collections: tuple[str, ...] = (BOOKS,)) -> None:
        self.queries = list(queries)
        self.collections = frozenset(collections)
        self.offered: list[str] = []

    def apply(self, changes: list[Change], world: dict[str, dict[str, Any]]) -> None:
        for change in changes:
            self.offered.append(change.id)
            for query in self.queries:
                row = world.get(change.id)
                if row is not None and query.member(row):
                    query.ids.add(change.id)
                else:
                    query.ids.discard(change.id)


def routed(routes: Routes, world: dict[str, dict[str, Any]], *changes: Change) -> list[str]:
    """Apply the changes to the world, then route them; the keys of the observers offered them."""
    for change in changes:
        if change.op == "delete":
            world.pop(change.id, None)
        else:
            world.setdefault(change.id, {}).update(change.fields)
    return offered(routes, world, list(changes))


def offered(routes: Routes, world: dict[str, dict[str, Any]], changes: list[Change]) -> list[str]:
    """Route changes already written to `world`; the keys of the observers offered them."""
    keys = []
    for key, observer, relevant in routes.route(changes):
        observer.apply(relevant, world)
        routes.applied(key, relevant)
        keys.append(key)
    return keys


def filed(routes: Routes, observers: dict[str, FakeObserver], world: dict[str, dict[str, Any]]) -> None:
    for key, observer in observers.items():
        routes.add(key, observer)  # type: ignore[arg-type]
        for query in observer.queries:
            query.ids = {doc_id for doc_id, row in world.items() if query.member(row)}
        routes.index(key, observer)  # type: ignore[arg-type]


def save(doc_id: str, **fields: Any) -> Change:
    return Change("save", BOOKS, doc_id, fields, partial=True)  # a save without its m2m lists


def by_title(*titles: str) -> FakeObserver:
    return FakeObserver(FakeQuery(BOOKS, term("title", *titles), lambda row: row.get("title") in titles))


def test_a_change_reaches_only_the_observers_filed_under_its_value_in_the_order_they_were_made() -> None:
    routes, world = Routes(), {}
    observers = {"t2": by_title("t2"), "t1": by_title("t1"), "t1 or t3": by_title("t1", "t3")}
    filed(routes, observers, world)
    assert routed(routes, world, save("1", title="t1")) == ["t1", "t1 or t3"]
    assert routed(routes, world, save("2", title="t9")) == []  # no observer's value: no work


def test_a_row_leaving_a_value_reaches_the_observers_of_its_old_value() -> None:
    world = {"1": {"title": "t1"}}
    routes = Routes()
    observers = {"t1": by_title("t1"), "t2": by_title("t2")}
    filed(routes, observers, world)  # "t1" holds book 1 from its first read
    assert routed(routes, world, save("1", title="t2")) == ["t1", "t2"]
    assert observers["t1"].queries[0].ids == set() and observers["t2"].queries[0].ids == {"1"}
    assert routed(routes, world, save("1", title="t3")) == ["t2"]  # no longer "t1"'s concern
    assert routed(routes, world, Change("delete", BOOKS, "1")) == []


def test_a_delete_or_a_many_to_many_change_reaches_the_holders_and_the_database_readers() -> None:
    world: dict[str, dict[str, Any]] = {"1": {"title": "t1", "tags": []}}
    routes = Routes()
    tagged = FakeQuery(
        BOOKS, term("title", "t1"), lambda row: row["title"] == "t1" and "red" in row["tags"], matcher=None
    )
    observers = {"t1": by_title("t1"), "t1 tagged red": FakeObserver(tagged), "t2": by_title("t2")}
    filed(routes, observers, world)
    tags_only = Change("save", BOOKS, "1", {"tags": ["red"]}, partial=True)
    assert routed(routes, world, tags_only) == ["t1", "t1 tagged red"]
    assert tagged.ids == {"1"}
    assert routed(routes, world, save("1", title="t2")) == ["t1", "t1 tagged red", "t2"]
    assert routed(routes, world, Change("delete", BOOKS, "1")) == ["t2"]


def test_a_many_to_many_change_reaches_a_database_reader_that_never_held_the_row() -> None:
    world: dict[str, dict[str, Any]] = {"1": {"title": "t1", "tags": []}}
    routes = Routes()
    tagged = FakeQuery(
        BOOKS, term("title", "t1"), lambda row: row["title"] == "t1" and "red" in row["tags"], matcher=None
    )
    filed(routes, {"t1 tagged red": FakeObserver(tagged)}, world)  # made after book 1's last save
    assert routed(routes, world, Change("save", BOOKS, "1", {"tags": ["red"]}, partial=True)) == [
        "t1 tagged red"
    ]
    assert tagged.ids == {"1"}


def joined_term(world: dict[str, dict[str, Any]], *emails: str, fails: bool = False) -> IndexTerm:
    """A term on the author's email: the hub reads the rows' values for each batch."""

    def current(doc_ids: list[str]) -> dict[str, Any]:
        if fails:
            raise ConnectionError("the database is down")
        return {d: world[d]["email"] for d in doc_ids if d in world and world[d].get("email")}

    return IndexTerm("author__email", frozenset(emails), lambda value: value, current)


def test_through_a_join_a_change_is_routed_by_the_joined_value_read_for_the_batch() -> None:
    world: dict[str, dict[str, Any]] = {"1": {"email": "a@x"}}
    routes = Routes()
    observers = {}
    for email in ("a@x", "b@x", "c@x"):
        member = lambda row, e=email: row.get("email") == e  # noqa: E731
        observers[email] = FakeObserver(FakeQuery(BOOKS, joined_term(world, email), member, matcher=None))
    filed(routes, observers, world)
    # The change carries the book's own columns; its author's email is the database's.
    assert routed(routes, world, save("1", email="b@x")) == ["a@x", "b@x"]
    assert routed(routes, world, save("1", pages=3)) == ["b@x"]
    assert routed(routes, world, Change("delete", BOOKS, "1")) == ["b@x"]


def test_through_a_join_values_that_cannot_be_read_offer_the_change_to_every_observer() -> None:
    world: dict[str, dict[str, Any]] = {}
    routes = Routes()
    observers = {
        email: FakeObserver(FakeQuery(BOOKS, joined_term(world, email, fails=True), lambda row: False))
        for email in ("a@x", "b@x")
    }
    filed(routes, observers, world)
    assert routed(routes, world, save("1", email="a@x")) == ["a@x", "b@x"]


class Library:
    """Books referring to authors, in memory: `books` and `authors`, id -> fields."""

    def __init__(self) -> None:
        self.books: dict[str, dict[str, Any]] = {}
        self.authors: dict[str, dict[str, Any]] = {}
        self.fails = False
        self.referring_reads = 0

    def email(self, book: dict[str, Any]) -> Any:
        return self.authors.get(book.get("author"), {}).get("email")  # type: ignore[arg-type]

    def term(self, *emails: str) -> IndexTerm:
        def current(doc_ids: list[str]) -> dict[str, Any]:
            if self.fails:
                raise ConnectionError("the database is down")
            found = {d: self.email(self.books[d]) for d in doc_ids if d in self.books}
            return {d: email for d, email in found.items() if email is not None}

        def referring(author_ids: list[str]) -> dict[str, dict[str, Any]]:
            self.referring_reads += 1
            if self.fails:
                raise ConnectionError("the database is down")
            found: dict[str, dict[str, Any]] = {}
            for doc_id, book in self.books.items():
                if book.get("author") in author_ids:
                    found.setdefault(book["author"], {})[doc_id] = self.email(book)
            return found

        through = Through("author", referring)
        return IndexTerm("author__email", frozenset(emails), lambda v: v, current, through)

    def by_email(self, email: str, via: str | None = AUTHORS, **extra: Any) -> FakeObserver:
        wanted = extra.get("pages")
        query = FakeQuery(
            BOOKS,
            self.term(email),
            lambda book: self.email(book) == email and (wanted is None or book.get("pages") == wanted),
            matcher=None,
            related={AUTHORS},
            via=via,
        )
        return JoiningObserver(query, collections=(BOOKS, AUTHORS))

    def routed(self, routes: Routes, *changes: Change) -> list[str]:
        for change in changes:
            rows = self.books if change.collection == BOOKS else self.authors
            if change.op == "delete":
                rows.pop(change.id, None)
            else:
                rows.setdefault(change.id, {}).update(change.fields)
        return offered(routes, self.books, list(changes))


class JoiningObserver(FakeObserver):
    def apply(self, changes: list[Change], world: dict[str, dict[str, Any]]) -> None:
        """As an Observer does: a change of a joined collection runs the query again."""
        if not any(change.collection in query.related for change in changes for query in self.queries):
            super().apply(changes, world)
            return
        self.offered += [change.id for change in changes]
        for query in self.queries:
            query.ids = {doc_id for doc_id, row in world.items() if query.member(row)}


def test_a_joined_row_s_change_reaches_only_the_observers_of_its_old_and_new_values() -> None:
    library = Library()
    library.authors = {"a1": {"email": "a@x"}, "a2": {"email": "b@x"}}
    library.books = {"1": {"author": "a1"}, "2": {"author": "a2"}}
    routes = Routes()
    observers = {email: library.by_email(email) for email in ("a@x", "b@x", "c@x", "d@x")}
    filed(routes, observers, library.books)
    email_change = Change("save", AUTHORS, "a1", {"email": "c@x"})
    assert library.routed(routes, email_change) == ["a@x", "c@x"]  # not b@x's nor d@x's
    assert observers["a@x"].queries[0].ids == set() and observers["c@x"].queries[0].ids == {"1"}
    assert library.referring_reads == 1  # one read for the batch, whatever the observers
    # The new holder is learned: the next change finds it by the value it held.
    assert library.routed(routes, Change("save", AUTHORS, "a1", {"email": "d@x"})) == ["c@x", "d@x"]
    # A joined row with no rows referring to it concerns no one (its value is no one's).
    assert library.routed(routes, Change("save", AUTHORS, "a3", {"email": "a@x"})) == []
    # A joined row's delete: the rows that referred to it may be changed in SQL
    # (SET_NULL) with no change of their own, so every observer reads again.
    assert library.routed(routes, Change("delete", AUTHORS, "a2")) == ["a@x", "b@x", "c@x", "d@x"]


def test_a_joined_row_s_change_that_keeps_its_value_reaches_the_observers_of_its_value() -> None:
    """Another column of the joined row may decide too (`author__name=...`): the observers
    of its value read again, and no other."""
    library = Library()
    library.authors = {"a1": {"email": "a@x"}}
    library.books = {"1": {"author": "a1"}}
    routes = Routes()
    observers = {email: library.by_email(email) for email in ("a@x", "b@x")}
    filed(routes, observers, library.books)
    assert library.routed(routes, Change("save", AUTHORS, "a1", {"tags": [3]}, partial=True)) == ["a@x"]


def test_an_observer_joining_the_table_otherwise_gets_every_change_of_it() -> None:
    library = Library()
    library.authors = {"a1": {"email": "a@x"}}
    library.books = {"1": {"author": "a1"}}
    routes = Routes()
    observers = {"a@x": library.by_email("a@x"), "b@x and a mentor": library.by_email("b@x", via=None)}
    filed(routes, observers, library.books)
    change = Change("save", AUTHORS, "a1", {"email": "c@x"})
    assert library.routed(routes, change) == ["a@x", "b@x and a mentor"]
    assert library.routed(routes, Change("save", AUTHORS, "a1", {"email": "e@x"})) == ["b@x and a mentor"]


def test_a_joined_row_s_change_whose_referring_rows_cannot_be_read_reaches_every_observer() -> None:
    library = Library()
    library.authors = {"a1": {"email": "a@x"}}
    library.books = {"1": {"author": "a1"}}
    routes = Routes()
    filed(routes, {email: library.by_email(email) for email in ("a@x", "b@x")}, library.books)
    library.fails = True
    assert library.routed(routes, Change("save", AUTHORS, "a1", {"email": "c@x"})) == ["a@x", "b@x"]


@pytest.mark.parametrize("seed", range(20))
def test_random_changes_of_books_and_their_authors_reach_every_observer_they_change(seed: int) -> None:
    rng = random.Random(seed)
    emails, authors = [f"{n}@x" for n in range(8)], [f"a{n}" for n in range(6)]
    library = Library()
    library.authors = {author: {"email": rng.choice(emails)} for author in authors}
    observers: dict[str, FakeObserver] = {}
    for n in range(40):
        email = rng.choice(emails)
        if rng.random() < 0.5:
            observers[f"o{n}"] = library.by_email(email)
        else:
            observers[f"o{n}"] = library.by_email(email, pages=rng.randint(0, 2))
    routes = Routes()
    late = dict(list(observers.items())[30:])
    filed(routes, dict(list(observers.items())[:30]), library.books)
    for step in range(400):
        if step == 100:
            filed(routes, late, library.books)
        roll = rng.random()
        if roll < 0.3:
            author = rng.choice(authors)
            if rng.random() < 0.1:
                change = Change("delete", AUTHORS, author)
                for doc_id in [d for d, b in library.books.items() if b.get("author") == author]:
                    del library.books[doc_id]  # (SET_NULL's or CASCADE's work: no change of theirs)
                library.authors.pop(author, None)
            else:  # a swap of emails is allowed: they need not be unique here
                change = Change("save", AUTHORS, author, {"email": rng.choice(emails)})
        else:
            doc_id = str(rng.randint(1, 12))
            if roll < 0.4 and doc_id in library.books:
                change = Change("delete", BOOKS, doc_id)
            else:
                change = save(doc_id, author=rng.choice(authors), pages=rng.randint(0, 2))
        library.routed(routes, change)
        for key, observer in observers.items():
            if step < 100 and key in late:
                continue
            query = observer.queries[0]
            selected = {d for d, book in library.books.items() if query.member(book)}
            assert query.ids == selected, f"step {step}: {key} holds {query.ids}, not {selected}"
    offered = sum(len(observer.offered) for observer in observers.values())
    assert offered < 400 * len(observers) * 0.6


def test_the_primary_key_files_by_document_id() -> None:
    routes, world = Routes(), {"1": {}, "2": {}}
    by_id = FakeObserver(FakeQuery(BOOKS, term(DOCUMENT_ID, "2"), lambda row: True))
    filed(routes, {"2": by_id}, world)
    assert routed(routes, world, save("1", title="x")) == []
    assert routed(routes, world, save("2", title="x"), Change("delete", BOOKS, "2")) == ["2"]


def test_an_observer_loading_or_not_described_by_a_term_gets_every_change() -> None:
    routes, world = Routes(), {}
    loading, ranged = by_title("t1"), FakeObserver(FakeQuery(BOOKS, None, lambda row: True))
    joined = FakeObserver(
        FakeQuery(BOOKS, term("title", "t1"), lambda row: True, matcher=None, related={TAGS}),
        collections=(BOOKS, TAGS),
    )
    routes.add("loading", loading)  # type: ignore[arg-type]
    filed(routes, {"ranged": ranged, "joins tags": joined}, world)
    assert routed(routes, world, save("1", title="t9")) == ["loading", "ranged"]
    assert routed(routes, world, Change("save", TAGS, "5", {"name": "red"})) == ["joins tags"]
    routes.index("loading", loading)  # type: ignore[arg-type]
    assert routed(routes, world, save("1", title="t8")) == ["ranged"]


def test_the_last_observer_of_an_index_takes_its_index_with_it() -> None:
    routes, world = Routes(), {"1": {"title": "t1"}}
    filed(routes, {"t1": by_title("t1"), "t2": by_title("t2")}, world)
    routes.remove("t1")
    routes.remove("t2")
    assert not routes.observed() and "indexes={}" in repr(routes)


def test_after_lost_changes_the_observers_read_again_tell_where_each_row_is() -> None:
    world = {"1": {"title": "t1"}}
    routes = Routes()
    observers = {"t1": by_title("t1"), "t2": by_title("t2")}
    filed(routes, observers, world)
    routes.forget_held()
    world["1"]["title"] = "t2"  # changed while the LISTEN connection was down
    for key, observer in observers.items():
        for query in observer.queries:
            query.ids = {doc_id for doc_id, row in world.items() if query.member(row)}
        routes.reloaded(key)
    assert routed(routes, world, save("1", title="t3")) == ["t2"]


@pytest.mark.parametrize("seed", range(20))
def test_random_changes_reach_every_observer_whose_rows_they_change(seed: int) -> None:
    """Against a world in memory: after each change, every observer holds exactly what its
    queries select, though most were offered nothing."""
    rng = random.Random(seed)
    titles, authors, tags = [f"t{n}" for n in range(12)], [str(n) for n in range(6)], ["red", "blue"]
    world: dict[str, dict[str, Any]] = {}
    observers: dict[str, FakeObserver] = {}
    for n in range(60):
        kind = rng.random()
        if kind < 0.4:
            chosen = tuple(rng.sample(titles, rng.randint(1, 3)))
            query = FakeQuery(BOOKS, term("title", *chosen), lambda row, c=chosen: row.get("title") in c)
        elif kind < 0.7:
            author, title = rng.choice(authors), rng.choice(titles)
            query = FakeQuery(
                BOOKS,
                term("author", author),
                lambda row, a=author, t=title: row.get("author") == a and row.get("title") == t,
            )
        else:
            title, tag = rng.choice(titles), rng.choice(tags)
            query = FakeQuery(
                BOOKS,
                term("title", title),
                lambda row, t=title, g=tag: row.get("title") == t and g in row.get("tags", ()),
                matcher=None,
            )
        observers[f"o{n}"] = FakeObserver(query)
    routes = Routes()
    late = dict(list(observers.items())[40:])  # made after some changes
    filed(routes, dict(list(observers.items())[:40]), world)
    for step in range(400):
        if step == 100:
            filed(routes, late, world)
        doc_id = str(rng.randint(1, 12))
        roll = rng.random()
        if roll < 0.15 and doc_id in world:
            change = Change("delete", BOOKS, doc_id)
        elif roll < 0.35 and doc_id in world:
            tag_list = rng.sample(tags, rng.randint(0, 2))
            change = Change("save", BOOKS, doc_id, {"tags": tag_list}, partial=True)
        else:
            change = save(doc_id, title=rng.choice(titles), author=rng.choice(authors))
        routed(routes, world, change)
        for key, observer in observers.items():
            if step < 100 and key in late:
                continue
            for query in observer.queries:
                selected = {d for d, row in world.items() if query.member(row)}
                assert query.ids == selected, f"step {step}: {key} holds {query.ids}, not {selected}"
    offered = sum(len(observer.offered) for observer in observers.values())
    # Observers were spared changes (offering all would be 400 each; this world is small,
    # so a row's old and new values often concern a third of them).
    assert offered < 400 * len(observers) * 0.6
