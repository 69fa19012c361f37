"""An Observer: one publication, with one set of parameters, for one user, kept live.

It holds the publication's current documents and, for each batch of Changes,
decides which rows enter, stay in or leave each of its querysets:
- in memory, when the queryset filters only on the row's own columns
  (`dddp.matching`): no query at all;
- with one query per batch (`pk__in` the changed ids) when it joins other tables;
- by running the queryset again when a row of a joined table changed, or when
  membership depends on other rows (slices).
It then sends each subscribed session the difference as added/changed/removed,
each message encoded once and shared by every session that passes it through
its mergebox unchanged.

Every method here runs in the hub's one greenlet, in notification order: an
Observer needs no locks.
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import models

from dddp.api import PublicationError
from dddp.changes import Change, channel_for
from dddp.documents import (
    concrete_fields,
    document_id,
    document_pk,
    id_reader,
    many_to_many_ids,
    row_reader,
    value_attnames,
)
from dddp.matching import IndexTerm, Matcher, compile_matcher, index_term, joined_aliases
from dddp.protocol import ejson, messages
from dddp.protocol.errors import must_be_logged_in
from dddp.publication_checks import (
    collection_sending,
    not_a_list_of_querysets,
    not_a_queryset,
    queryset_problems,
    unpublished_tables,
)
from dddp.server.compiled import (
    CompiledQuery,
    ReadPlan,
    compile_queries,
    keep_bounded,
    read_rows,
    values_rows,
)
from dddp.server.compiled import read_together as read_rows_together
from dddp.server.snapshot import Snapshot
from dddp.visibility import narrowed

if TYPE_CHECKING:
    from dddp.api import Collection, Publication, Registry
    from dddp.server.session import Session

logger = logging.getLogger("dddp.server")

Documents = dict[str, dict[str, dict[str, Any]]]  # collection -> id -> fields
Rows = dict[str, dict[str, Any]]  # one queryset's rows: id -> fields


@dataclass
class ObservedQuery:
    """One queryset of a publication, and the ids of the rows in it now."""

    queryset: models.QuerySet[Any]
    collection: type[Collection]
    name: str
    related: frozenset[str]  # collections of joined tables: a change there means re-running
    matcher: Matcher | None
    rerun_always: bool
    columns: frozenset[str]  # the names of the model's own (non-m2m) fields
    term: IndexTerm | None = None  # a condition every member meets (dddp.server.routing)
    # The collection of the joined rows whose changes the term routes too (its `through`).
    via: str | None = None
    compiled: CompiledQuery | None = None  # its SQL, and how to read from it (None: unknown)
    ids: set[str] = field(default_factory=set)


#: What makes two subscriptions share one Observer: the publication, its params, and the
#: SQL its querysets compile to (or, when that cannot be told, the user).
ObserverKey = tuple[str, str, str]


def observer_key(publication: type[Publication], params: list[Any], user_id: Any) -> ObserverKey:
    """The key of a subscription as asked: one per user (see `shared_key` for the observer's)."""
    return (publication.publication_name(), ejson.dumps(params, canonical=True), "user " + repr(user_id))


def publication_queries(
    registry: Registry, publication: type[Publication], params: list[Any], user_id: Any
) -> Any:
    """What the publication's `get_queries` returns for these params and this user, each
    queryset narrowed to the rows the user may see (a Collection's `user_rel`)."""
    if publication.login_required and user_id is None:
        raise must_be_logged_in()
    return narrowed(registry, publication(user_id).get_queries(*params), user_id)


def shared_key(asked: ObserverKey, compiled: list[CompiledQuery] | None) -> ObserverKey:
    """The observer's key: subscriptions whose querysets compile to the same SQL, with the
    same parameters, see the same rows, whoever the user: they share one observer (a
    publication that does not depend on the user has one for every user). Querysets whose
    SQL cannot be told (`compiled` None: not querysets, or a compiler error) keep one
    observer per user. `asked` is the subscription's `observer_key`."""
    if compiled is None:
        return asked
    sql = [[query.label, query.sql, [repr(value) for value in query.params]] for query in compiled]
    return (asked[0], asked[1], "sql " + json.dumps(sql))


class Observer:
    """Keeps one (publication, params, user)'s documents and subscribers up to date."""

    def __init__(
        self,
        registry: Registry,
        publication: type[Publication],
        params: list[Any],
        user_id: Any,
        returned: Any = None,
        compiled: list[CompiledQuery] | None = None,
    ):
        """`returned`: what get_queries returned, and `compiled` its querysets compiled
        (`dddp.server.compiled`), when the caller has them already."""
        self.registry = registry
        self.name = publication.publication_name()
        where = f"{publication.__name__}.get_queries()"
        if returned is None:
            returned = publication_queries(registry, publication, params, user_id)
        problem = not_a_list_of_querysets(where, returned)
        if problem is not None:
            raise PublicationError(str(problem))
        if compiled is None:
            compiled = compile_queries(returned)
        self.queries = [
            self._observe(f"{where}[{index}]", query, None if compiled is None else compiled[index])
            for index, query in enumerate(returned)
        ]
        self.documents: Documents = {}
        self.subscribers: dict[tuple[Session, Hashable], None] = {}  # ordered: insertion order
        self.loaded = False
        # While a first read runs elsewhere: the Changes that arrived meanwhile, to apply
        # after it, and whether the LISTEN connection was lost meanwhile (read again).
        self.arrived: list[Change] | None = None
        self.stale = False
        # The documents as new subscribers get them, while some session still sends them
        # and until they change (dddp.server.snapshot).
        self._snapshot: weakref.ref[Snapshot] | None = None

    def _observe(self, where: str, queryset: Any, compiled: CompiledQuery | None) -> ObservedQuery:
        """How to follow one queryset; PublicationError (dddp.E006, E008, E010) if dddp cannot."""
        if not isinstance(queryset, models.QuerySet):
            raise PublicationError(str(not_a_queryset(where, queryset)))
        plan = compiled.plan if compiled is not None else None
        found = _decided.get((self.registry, plan)) if plan is not None else None
        if found is None:
            found = _what_sql_decides(self.registry, where, queryset)
            if plan is not None:
                keep_bounded(_decided, (self.registry, plan), found)
        collection, related = found
        term = index_term(queryset)
        via = None
        if term is not None and term.through is not None:
            sender = collection_sending(self.registry, term.through.table)
            via = sender.collection_name() if sender is not None else None
        return ObservedQuery(
            queryset=queryset,
            collection=collection,
            name=collection.collection_name(),
            related=related,
            matcher=compile_matcher(queryset),
            rerun_always=queryset.query.is_sliced,
            columns=_columns(queryset.model),
            term=term,
            via=via,
            compiled=compiled,
        )

    @functools.cached_property  # (the queries are fixed when the observer is made)
    def collections(self) -> frozenset[str]:
        """The collections whose changes concern this observer (published or joined)."""
        names = {q.name for q in self.queries}
        for query in self.queries:
            names |= query.related
        return frozenset(names)

    @functools.cached_property
    def channels(self) -> set[str]:
        """The NOTIFY channels this observer needs."""
        return {channel_for(name) for name in self.collections}

    # --- reading the database --------------------------------------------------------

    def read(self) -> list[dict[str, dict[str, Any]]]:
        """Every queryset's rows now, as id -> published fields; changes nothing here.

        The Hub runs a first read away from its own greenlet (see `install`).
        """
        return [_run(query) for query in self.queries]

    def install(self, results: list[dict[str, dict[str, Any]]]) -> None:
        """Take a first `read` as the documents: nothing to compare with and no one to tell."""
        for query, rows in zip(self.queries, results, strict=True):
            query.ids = set(rows)
            self.documents.setdefault(query.name, {}).update(rows)
        self._snapshot = None
        self.loaded = True

    def load(self) -> None:
        """Run every queryset and send subscribers the difference (a resync)."""
        results = self.read()
        if not self.documents and not self.subscribers:
            self.install(results)
            return
        fresh: dict[tuple[str, str], dict[str, Any]] = {}
        for query, rows in zip(self.queries, results, strict=True):
            query.ids = set(rows)
            for doc_id, fields in rows.items():
                fresh[(query.name, doc_id)] = fields
        known = [(name, doc_id) for name, docs in self.documents.items() for doc_id in docs]
        self._update(dict.fromkeys([*fresh, *known]), fresh)  # in query order, then the gone
        self.loaded = True

    def apply(self, batch: list[Change], joined: JoinedValues | None = None) -> None:
        """Bring the documents up to date with a batch of Changes, in commit order.

        `joined`: the batch's rows' values through a join, as the hub read them for
        routing (`Routes.joined_now`): a query whose term is its whole filter takes
        membership from them instead of asking the database again.
        """
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        touched: dict[tuple[str, str], None] = {}  # ordered: messages follow commit order
        for query in self.queries:
            own = [change for change in batch if change.collection == query.name]
            if query.rerun_always or any(change.collection in query.related for change in batch):
                rows = _run(query)
                touched.update(dict.fromkeys((query.name, doc_id) for doc_id in [*rows, *query.ids]))
                query.ids = set(rows)
                latest.update({(query.name, doc_id): fields for doc_id, fields in rows.items()})
                continue
            if not own:
                continue
            to_check: dict[str, None] = {}
            incomplete: dict[str, None] = {}  # entering documents known only in part
            same_collection = [q for q in self.queries if q.name == query.name]
            docs = self.documents.get(query.name, {})
            for change in own:
                key = (query.name, change.id)
                touched[key] = None
                if change.op == "delete":
                    query.ids.discard(change.id)
                    to_check.pop(change.id, None)
                    continue
                shaped = query.collection.shape(change.fields)
                if change.partial:  # merge with what we hold (many-to-many lists, see signals)
                    base = latest.get(key) or docs.get(change.id)
                    if base is not None and not any(change.id in q.ids for q in same_collection):
                        # Not held now: the hub offers a row's changes only while some
                        # query holds it (dddp.server.routing), so what we knew of it is
                        # not to be trusted; read it if it comes in.
                        base = None
                        latest.pop(key, None)
                    if base is None or change.id in incomplete:  # (read once it is in)
                        incomplete[change.id] = None
                    else:
                        latest[key] = {**base, **shaped}
                else:
                    latest[key] = shaped
                if query.matcher is None:
                    to_check[change.id] = None
                elif query.columns <= change.fields.keys():
                    if query.matcher(change.fields, change.id):
                        query.ids.add(change.id)
                    else:
                        query.ids.discard(change.id)
                # else: only many-to-many lists changed, which own-column filters ignore
            if to_check:
                values = _joined_values(query, joined)
                if values is not None:
                    members = {doc_id for doc_id in to_check if values.get(doc_id) in query.term.values}  # type: ignore[union-attr]
                else:
                    members = _members(query, list(to_check))
                query.ids = (query.ids - set(to_check)) | members
            entering = [
                doc_id for doc_id in incomplete if doc_id in query.ids and (query.name, doc_id) not in latest
            ]
            if entering:
                latest.update({(query.name, k): v for k, v in _run(query, entering).items()})
        self._update(touched, latest)

    # --- sending ----------------------------------------------------------------------

    def _update(self, keys: Iterable[tuple[str, str]], latest: dict[tuple[str, str], dict[str, Any]]) -> None:
        """Set each key's document to what the queries now hold, and tell subscribers."""
        for name, doc_id in keys:
            member = any(doc_id in q.ids for q in self.queries if q.name == name)
            docs = self.documents.setdefault(name, {})
            old = docs.get(doc_id)
            new = latest.get((name, doc_id), old) if member else None
            # Messages are encoded only when someone will get them (not on a first load).
            if old is None and new is not None:
                self._snapshot = None
                docs[doc_id] = new
                if self.subscribers:
                    self._send("added", name, doc_id, new, (), messages.added(name, doc_id, new))
            elif old is not None and new is None:
                self._snapshot = None
                del docs[doc_id]
                if self.subscribers:
                    self._send("removed", name, doc_id, {}, (), messages.removed(name, doc_id))
            elif old is not None and new is not None and new is not old:
                changed = {k: v for k, v in new.items() if k not in old or not ejson.equals(old[k], v)}
                cleared = tuple(k for k in old if k not in new)
                if changed or cleared:  # else keep `old`: sessions hold that very dict
                    self._snapshot = None
                    docs[doc_id] = new
                    if self.subscribers:
                        text = messages.changed(name, doc_id, changed, cleared)
                        self._send("changed", name, doc_id, changed, cleared, text, after=new, before=old)

    def _send(
        self,
        kind: str,
        name: str,
        doc_id: str,
        fields: dict[str, Any],
        cleared: tuple[str, ...],
        text: str,
        after: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
    ) -> None:
        for session, sub_id in list(self.subscribers):
            session.deliver(sub_id, kind, name, doc_id, fields, cleared, text, after, before)

    def attach(self, session: Session, sub_id: Hashable) -> None:
        """Add a subscriber and send it every current document."""
        snapshot = self._snapshot() if self._snapshot is not None else None
        if snapshot is None:
            snapshot = Snapshot(self.documents)
            self._snapshot = weakref.ref(snapshot)
        session.deliver_initial(sub_id, snapshot)
        self.subscribers[(session, sub_id)] = None

    def detach(self, session: Session, sub_id: Hashable) -> None:
        self.subscribers.pop((session, sub_id), None)


def _run(query: ObservedQuery, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The query's rows now (or those of `only` ids), as id -> published fields: from its
    compiled SQL when it has a read plan, else through Django, in chunks."""
    model = query.queryset.model
    compiled = query.compiled
    many = False  # known to be CHUNK_ROWS or more
    if only is None and compiled is not None and compiled.plan is not None:
        rows = read_rows(compiled)
        if rows is not None:
            return _documents(query, rows, compiled.plan.alias)
        many = True
    queryset = query.queryset
    if only is not None:
        queryset = queryset.filter(pk__in=[document_pk(model, doc_id) for doc_id in only])
    values = queryset.values_list(*value_attnames(model))
    return _documents(query, values_rows(values, many), values.db)


def _documents(query: ObservedQuery, rows: Iterable[Any], using: str) -> dict[str, dict[str, Any]]:
    """Rows as `values_list(*value_attnames(model))` gives them, as id -> published fields
    (as `query` publishes them); a row a join repeats is one document."""
    model = query.queryset.model
    read = row_reader(model)
    fields = {row[0]: read(row) for row in rows}
    for m2m in model._meta.many_to_many:
        for pk, ids in many_to_many_ids(model, m2m, list(fields), using).items():
            fields[pk][m2m.name] = ids
    shape = query.collection.shape
    to_id = id_reader(model)
    return {to_id(pk): shape(values) for pk, values in fields.items()}


def read_together(observers: list[Observer]) -> list[list[dict[str, dict[str, Any]]]]:
    """The first reads of observers whose querysets compile to the same SQL but for their
    parameters (`dddp.server.first_reads`), with one statement per queryset for all of
    them (`dddp.server.compiled.read_together`), and the many-to-many lists of all their
    rows with one query per field."""
    if len(observers) == 1:
        return [observers[0].read()]
    results: list[list[dict[str, dict[str, Any]]]] = [[] for _ in observers]
    for position, first in enumerate(observers[0].queries):
        compiled = [observer.queries[position].compiled for observer in observers]
        assert first.compiled is not None and first.compiled.plan is not None
        each = read_rows_together(compiled)  # type: ignore[arg-type]
        if each is None:  # too many rows at once: each in chunks of its own
            for observer, result in zip(observers, results, strict=True):
                result.append(_run(observer.queries[position]))
            continue
        documents = _documents(first, [row for rows in each for row in rows], first.compiled.plan.alias)
        to_id = id_reader(first.queryset.model)
        for rows, result in zip(each, results, strict=True):
            ids = [to_id(row[0]) for row in rows]
            result.append({doc_id: documents[doc_id] for doc_id in ids})
    return results


#: What `_what_sql_decides` found, by registry and read plan: querysets of one SQL text but for its
#: parameters (ten thousand observers of `BooksByAuthor`) have the same tables and joins.
_decided: dict[tuple[Registry, ReadPlan], tuple[type[Collection], frozenset[str]]] = {}


def _what_sql_decides(
    registry: Registry, where: str, queryset: models.QuerySet[Any]
) -> tuple[type[Collection], frozenset[str]]:
    """What a queryset's SQL alone decides of how to follow it: its collection, and the
    collections of joined tables whose changes mean running it again. PublicationError
    if dddp cannot follow it; a warning if it joins a table no Collection publishes."""
    problems = queryset_problems(registry, where, queryset)
    if problems:
        raise PublicationError(str(problems[0]))
    collection = registry.collection_for_model(queryset.model)
    assert collection is not None  # (queryset_problems says so)
    related = set()
    for alias in joined_aliases(queryset.query):
        sender = collection_sending(registry, queryset.query.alias_map[alias].table_name)
        if sender is not None:
            related.add(sender.collection_name())
    # The queryset's own changes are matched row by row, not by re-running it (its
    # many-to-many tables' changes arrive as its own changes), unless it joins its
    # own rows again: then one row's change can bring others in or out (an author's
    # new book titled x, for `author__books__title=x`).
    if not _joins_own_rows(queryset):
        related.discard(collection.collection_name())
    for table in unpublished_tables(registry, queryset):  # dddp.W002 at start-up
        logger.warning(
            "%s filters through table %s, which no Collection publishes: "
            "its changes reach subscribers only when the publication's own rows change",
            where,
            table,
        )
    return collection, frozenset(related)


_model_columns: dict[type[models.Model], frozenset[str]] = {}


def _columns(model: type[models.Model]) -> frozenset[str]:
    """The names of the model's own (non-m2m) fields (one set per model)."""
    columns = _model_columns.get(model)
    if columns is None:
        columns = _model_columns[model] = frozenset(f.name for f in concrete_fields(model))
    return columns


def _joins_own_rows(queryset: models.QuerySet[Any]) -> bool:
    """Whether the queryset joins its model's table again, or one of its many-to-many
    tables other than from its own row: then a row's membership depends on other rows'."""
    query = queryset.query
    base = query.get_initial_alias()
    meta = queryset.model._meta
    own_m2m = {m2m.m2m_db_table() for m2m in meta.many_to_many}
    for alias in joined_aliases(query):
        join = query.alias_map[alias]
        if join.table_name == meta.db_table:
            return True
        if join.table_name in own_m2m and getattr(join, "parent_alias", None) != base:
            return True
    return False


#: (collection, a term's path through a join) -> the batch's changed rows' values there now.
JoinedValues = dict[tuple[str, str], dict[str, Hashable]]


def _joined_values(query: ObservedQuery, joined: JoinedValues | None) -> dict[str, Hashable] | None:
    """The batch's values of the query's term, when they decide its membership alone."""
    term = query.term
    if joined is None or term is None or not term.whole:
        return None
    return joined.get((query.name, term.field))


def _members(query: ObservedQuery, candidates: list[str]) -> set[str]:
    """Which of these ids the query holds now: one query for the whole batch."""
    model = query.queryset.model
    pks = [document_pk(model, doc_id) for doc_id in candidates]
    found = query.queryset.filter(pk__in=pks).values_list("pk", flat=True)
    return {document_id(pk) for pk in found}
