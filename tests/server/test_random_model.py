"""Randomized model-based test: random ORM writes, several watching clients, exact convergence.

Another process (this one) applies random creates, updates, deletes and
re-links through the ORM, some in multi-row transactions, some rolled back,
while clients with overlapping subscriptions watch. Every client is strict
(no duplicate `added`, no `changed`/`removed` for unknown documents: D-58),
and at quiescence each client's collections must equal the union of its
subscriptions' querysets, field for field.

    python3 tests/run.py tests/server/test_random_model.py --random-seeds 1,2,3,4,5 --random-steps 500
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket
from django.db import models, transaction

from dddp.documents import canonical, document_id, fields_from_values, many_to_many_ids, value_attnames
from dddp.protocol import ejson
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess
from tests.testapp.models import Author, Book, Tag

pytestmark = pytest.mark.django_db(transaction=True)

View = dict[str, dict[str, dict[str, Any]]]


def documents(queryset: models.QuerySet[Any]) -> dict[str, dict[str, Any]]:
    """The documents of a queryset as a client holds them (JSON, EJSON-encoded)."""
    model = queryset.model
    rows = {row["id"]: fields_from_values(model, row) for row in queryset.values(*value_attnames(model))}
    for field in model._meta.many_to_many:
        for pk, ids in many_to_many_ids(model, field, list(rows)).items():
            rows[pk][field.name] = ids
    return {document_id(pk): ejson.to_json_value(canonical(fields)) for pk, fields in rows.items()}


def expected_view(subscriptions: list[tuple[str, list[Any]]]) -> View:
    view: View = {}
    for name, params in subscriptions:
        if name == "AllBooks":
            querysets = [Author.objects.all(), Book.objects.all()]
        elif name == "BooksByAuthorEmail":
            querysets = [Author.objects.filter(email=params[0]), Book.objects.filter(author__email=params[0])]
        elif name == "LongBooks":
            querysets = [Book.objects.filter(pages__gte=params[0])]
        elif name == "BooksByAuthor":
            author_id, title = params
            books = Book.objects.filter(author=author_id)
            querysets = [books.filter(title=title) if title is not None else books]
        elif name == "BooksTitled":
            querysets = [Book.objects.filter(title__in=params[0])]
        elif name == "BooksTitledTagged":
            querysets = [Book.objects.filter(title=params[0], tags__name=params[1])]
        elif name == "BooksOfAuthorEmail":
            books = Book.objects.filter(author__email=params[0])
            querysets = [books.filter(tags__name=params[1]) if params[1] is not None else books]
        elif name == "AuthorById":
            querysets = [Author.objects.filter(pk=params[0])]
        else:
            querysets = [Book.objects.filter(tags__name=params[0])]
        for queryset in querysets:
            view.setdefault(queryset.model._meta.label_lower, {}).update(documents(queryset))
    return {name: docs for name, docs in view.items() if docs}


class RandomWriter:
    """Random ORM operations over a small world, so that rows often collide."""

    def __init__(self, rng: random.Random, emails: list[str], tags: list[Tag]):
        self.rng = rng
        self.emails = emails
        self.tags = tags

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.15:
            self.in_transaction(rollback=self.rng.random() < 0.3)
        elif roll < 0.2:
            self.savepoint_rolled_back()
        else:
            self.operation()

    def in_transaction(self, rollback: bool) -> None:
        try:
            with transaction.atomic():
                for _ in range(self.rng.randint(2, 4)):
                    self.operation()
                if rollback:
                    raise _Rollback
        except _Rollback:
            pass

    def savepoint_rolled_back(self) -> None:
        with transaction.atomic():
            self.operation()
            try:
                with transaction.atomic():
                    self.operation()
                    raise _Rollback
            except _Rollback:
                pass

    def operation(self) -> None:
        rng = self.rng
        books = list(Book.objects.order_by("pk"))
        authors = list(Author.objects.order_by("pk"))
        choice = rng.random()
        if choice < 0.25 or not books:
            Book.objects.create(
                title=f"t{rng.randint(0, 9)}", author=rng.choice(authors), pages=rng.randint(0, 400)
            )
        elif choice < 0.45:
            book = rng.choice(books)
            book.pages = rng.randint(0, 400)
            book.title = rng.choice([book.title, f"t{rng.randint(0, 9)}"])
            book.save()
        elif choice < 0.6:
            book = rng.choice(books)
            book.author = rng.choice(authors)  # re-link
            book.save()
        elif choice < 0.7:
            rng.choice(books).delete()
        elif choice < 0.8:
            author = rng.choice(authors)
            free = [email for email in self.emails if email not in {a.email for a in authors}]
            if free and rng.random() < 0.7:
                author.email = rng.choice(free)  # moves their books between subscriptions
            else:  # out of every subscription, for good: no later change brings them back
                author.email = f"gone-{rng.randrange(10**9)}-{self.emails[0]}"
            author.save()
        elif choice < 0.9:
            rng.choice(books).tags.add(rng.choice(self.tags))
        else:
            book = rng.choice(books)
            if rng.random() < 0.5:
                book.tags.remove(rng.choice(self.tags))
            else:
                rng.choice(self.tags).books.remove(book)


class _Rollback(Exception):
    pass


def read_until(clients: list[DDPClient], done: Callable[[DDPClient], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    for client in clients:
        while not done(client) and time.monotonic() < deadline:
            try:
                client.recv(timeout=0.3)
            except websocket.WebSocketTimeoutException:
                pass


def read_all_until(clients: list[DDPClient], expected: list[View], timeout: float) -> None:
    """Read every client in turn (each answers its pings) until each holds its view."""
    deadline = time.monotonic() + timeout
    waiting = [(client, view) for client, view in zip(clients, expected, strict=True)]
    while waiting and time.monotonic() < deadline:
        for client, view in waiting:
            try:
                while client.collections_view() != view:
                    client.recv(timeout=0.01)  # what has arrived, then the next client
            except websocket.WebSocketTimeoutException:
                pass
        waiting = [(client, view) for client, view in waiting if client.collections_view() != view]


def test_random_writes_leave_every_client_equal_to_its_querysets(
    server: ServerProcess, random_seed: int, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(random_seed)
    steps = request.config.getoption("random_steps")
    prefix = f"s{random_seed}-{rng.randrange(10**6)}"
    emails = [f"{prefix}-{n}@example.com" for n in range(6)]
    for n in range(4):
        Author.objects.create(name=f"author {n}", email=emails[n])
    tags = [Tag.objects.create(name=f"{prefix}-tag{n}") for n in range(3)]
    plans: list[list[tuple[str, list[Any]]]] = [
        [("AllBooks", [])],
        [("BooksByAuthorEmail", [emails[0]])],
        [("BooksByAuthorEmail", [emails[0]]), ("BooksByAuthorEmail", [emails[1]])],
        [("BooksByAuthorEmail", [emails[4]]), ("AllBooks", [])],
        [("LongBooks", [200]), ("BooksTagged", [tags[0].name])],
    ]
    clients = []
    for plan in plans:
        client = DDPClient(server.ws_url)
        client.connect()
        for number, (name, params) in enumerate(plan):
            client.sub(name, *params, id=f"sub{number}")
        clients.append(client)
    try:
        writer = RandomWriter(rng, emails, tags)
        for _ in range(steps):
            writer.step()
        expected = [expected_view(plan) for plan in plans]
        read_until(clients, lambda c: c.collections_view() == expected[clients.index(c)])
        for client, plan, view in zip(clients, plans, expected, strict=True):
            assert client.collections_view() == view, f"client subscribed to {plan} diverged"
    finally:
        for client in clients:
            client.close()


def many_observers_plans(
    rng: random.Random, authors: list[int], tags: list[str], emails: list[str]
) -> list[list[Any]]:
    """Forty clients' subscriptions to publications filed by value: hundreds of distinct
    parameters, overlapping within a client (one book in several of its subscriptions) and
    between clients (shared observers). Twenty each: DDDP_MAX_OBSERVERS_PER_CONNECTION."""
    titles = [f"t{n}" for n in range(10)]
    every: list[tuple[str, list[Any]]] = []
    for author in authors:
        every.append(("AuthorById", [author]))
        every.append(("BooksByAuthor", [author, None]))
        every += [("BooksByAuthor", [author, title]) for title in titles]
    every += [("BooksTitledTagged", [title, tag]) for title in titles for tag in tags]
    every += [("BooksByAuthorEmail", [email]) for email in emails]  # through a join
    # Through a join with no query of the author itself: its changes are routed by its books.
    every += [("BooksOfAuthorEmail", [email, tag]) for email in emails for tag in [None, *tags]]
    for size in (1, 2, 3, 4):
        for _ in range(80):
            every.append(("BooksTitled", [sorted(rng.sample(titles, size))]))
    distinct = list({ejson.dumps(plan, canonical=True): plan for plan in every}.values())
    return [rng.sample(distinct, 20) for _ in range(40)]


def test_random_writes_with_hundreds_of_observers_filed_by_value(
    server: ServerProcess, random_seed: int, request: pytest.FixtureRequest
) -> None:
    """Each change must reach every observer its old or new row concerns, and the others
    may be spared it: at quiescence every client still equals its querysets."""
    rng = random.Random(random_seed)
    steps = request.config.getoption("random_steps")
    prefix = f"m{random_seed}-{rng.randrange(10**6)}"
    emails = [f"{prefix}-{n}@example.com" for n in range(6)]
    authors = [Author.objects.create(name=f"author {n}", email=emails[n]) for n in range(4)]
    tags = [Tag.objects.create(name=f"{prefix}-tag{n}") for n in range(3)]
    plans = many_observers_plans(rng, [a.pk for a in authors], [t.name for t in tags], emails)
    assert len({ejson.dumps(p, canonical=True) for plan in plans for p in plan}) > 200
    clients = []
    for plan in plans:
        client = DDPClient(server.ws_url)
        client.connect()
        for number, (name, params) in enumerate(plan):
            answer = client.sub(name, *params, id=f"sub{number}")
            assert answer[-1]["msg"] == "ready", answer[-1]
        clients.append(client)
    try:
        writer = RandomWriter(rng, emails, tags)
        for step in range(steps * 2):
            writer.step()
            if step == steps // 2:  # some subscriptions end and start again mid-way
                for client, plan in zip(clients, plans, strict=True):
                    for number in rng.sample(range(len(plan)), 3):
                        client.send({"msg": "unsub", "id": f"sub{number}"})
                        client.sub(plan[number][0], *plan[number][1], id=f"sub{number}")
        expected = [expected_view(plan) for plan in plans]
        read_all_until(clients, expected, timeout=20)
        for client, plan, view in zip(clients, plans, expected, strict=True):
            assert client.collections_view() == view, f"a client with {len(plan)} subscriptions diverged"
    finally:
        for client in clients:
            client.close()
