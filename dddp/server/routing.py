"""Which observers a change concerns: observers filed by collection, and by value.

Every observer is filed under each collection whose changes concern it (its
published ones and the ones it joins). Within a collection, an observer whose
every queryset of it has an `IndexTerm` (`dddp.matching.index_term`: a column
of its own equal to one of a few values, `author_id = 3`, `owner_id = <user>`,
`pk = <user>`) is filed under those values instead, in a `ValueIndex` per
(collection, field): a change reaches it only when the row's new value, or a
value the row had while the observer may have held it, is one of its values.
A change that concerns none of a publication's thousand observers costs two
dict lookups, not a thousand matcher calls.

A joined collection's changes (an author's, for `author__email = e`) are
routed by the index of the term that joins it, when that join is the
queryset's only one to its table (`dddp.matching.Through`): one query per
batch reads the rows referring to the changed ones (the author's books),
and the change reaches the observers that may hold one of them, and those
of the joined value now.

The rest get every change of the collection, as before: an observer whose
first read is still running (its `arrived` must miss nothing), one that
re-runs a queryset on changes of the collection (it joins it otherwise, or
is sliced), and one with a queryset the index cannot describe (OR, ranges,
expressions).

Old values. A row's value before a change is not in the change (a payload
carries the new state only), so each ValueIndex keeps, per document, the
values under which some observer may hold it (`held`): a superset, filled
from each observer's members when its queries are read (each member's value
is one of its term's values, since the filter says so) and from each change
that an observer now holds, and narrowed to the new value at each change of
the row. An entry whose values no observer is filed under is dropped.

Everything here runs in the hub's greenlet.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dddp.changes import Change
from dddp.log_throttle import LogThrottle, left_out
from dddp.matching import DOCUMENT_ID, IndexTerm, Through

if TYPE_CHECKING:
    from dddp.server.observer import ObservedQuery, Observer, ObserverKey

logger = logging.getLogger("dddp.server")
_failures_logged = LogThrottle()

#: An observer and its creation number: observers are offered a batch in the order they
#: were made, whichever group they are filed in.
Entry = tuple[int, "Observer"]
#: Rows referring to joined ones: joined id -> referring document id -> its term's value.
Referring = dict[str, dict[str, Hashable | None]]


@dataclass
class ValueIndex:
    """The observers of one collection filed under the values of one field."""

    field: str  # a field name, or DOCUMENT_ID
    term: IndexTerm  # the first filed observer's: its `key` is the field's
    filed: dict[Hashable, dict[ObserverKey, Entry]] = dataclasses.field(default_factory=dict)
    # Observers whose membership the database decides (joins): a change of a row's
    # many-to-many lists alone can bring the row in, whatever it held before.
    partial_readers: dict[ObserverKey, Entry] = dataclasses.field(default_factory=dict)
    # Each document id -> the values under which some observer may hold it.
    held: dict[str, set[Hashable]] = dataclasses.field(default_factory=dict)
    size: int = 0  # observers filed
    # For a term through a join: the joined collection whose changes it routes too.
    via: str | None = None
    through: Through | None = None

    def route(
        self, change: Change, into: dict[ObserverKey, Entry], current: dict[str, Hashable] | None = None
    ) -> None:
        """Add the observers `change` concerns to `into`, and note the row's new value.

        `current`: for a term through a join, the batch's rows' values now (None if they
        could not be read: every observer of the index is offered the change).
        """
        if self.field == DOCUMENT_ID:  # the id never changes: no old value to keep
            into.update(self.filed.get(change.id, ()))
            return
        for value in self.held.get(change.id, ()):
            into.update(self.filed.get(value, ()))
        if change.op == "delete":
            self.held.pop(change.id, None)
            return
        if self.term.current is not None:
            # The value is the joined row's: read for the batch, whatever the change carries.
            if current is None:
                for everyone in self.filed.values():
                    into.update(everyone)
                self.held.pop(change.id, None)
                return
            self._now(change.id, current.get(change.id), into)
            return
        if self.field not in change.fields:  # only many-to-many lists: the value is as it was
            into.update(self.partial_readers)
            return
        # (A save carries every column, also when it is `partial` for lack of its
        # many-to-many lists: see dddp.signals.)
        try:
            self._now(change.id, self.term.key(change.fields[self.field]), into)
        except TypeError:  # an unhashable value: no observer is filed under it
            self.held.pop(change.id, None)

    def route_through(
        self, change: Change, into: dict[ObserverKey, Entry], referring: Referring | None
    ) -> None:
        """Add the observers a change of a joined row (an author) concerns to `into`: those
        that may hold a row referring to it (its books), or hold its value now.

        `referring`: the batch's joined rows' referring rows, with the value now (None if
        they could not be read: every observer of the index is offered the change).
        """
        if change.op == "delete" or referring is None:
            # The rows that referred to a deleted one are gone, or were changed in SQL
            # with no change of their own (on_delete=SET_NULL): where they are is unknown.
            for everyone in self.filed.values():
                into.update(everyone)
            return
        for doc_id, value in referring.get(change.id, {}).items():
            for held in self.held.get(doc_id, ()):
                into.update(self.filed.get(held, ()))
            # Once they have read again, only the observers of its value now can hold it.
            self._now(doc_id, value, into)

    def _now(self, doc_id: str, value: Hashable | None, into: dict[ObserverKey, Entry]) -> None:
        """The row's value is now `value` (None: no value, or no row): offer the change to
        its observers, and remember it as the only one the row can be held under."""
        filed = self.filed.get(value) if value is not None else None
        if filed:
            into.update(filed)
            self.held[doc_id] = {value}
        else:
            self.held.pop(doc_id, None)

    def learn(self, term: IndexTerm, ids: Iterable[str]) -> None:
        """These documents are held under the term's values (one of them, for each)."""
        if self.field == DOCUMENT_ID:
            return
        for doc_id in ids:
            self.held.setdefault(doc_id, set()).update(term.values)

    def learn_from(self, term: IndexTerm, changes: list[Change]) -> None:
        """The documents of these changes are held: under the value a change carries, when
        it carries one (else, under one of the term's values)."""
        if self.field == DOCUMENT_ID:
            return
        for change in changes:
            values: Iterable[Hashable] = term.values
            if self.field in change.fields:
                try:
                    values = (self.term.key(change.fields[self.field]),)
                except TypeError:
                    pass
            self.held.setdefault(change.id, set()).update(values)


@dataclass
class _Placement:
    """Where one observer is filed: the collections it gets every change of, and the
    value indexes it is in (with the query that put it there)."""

    entry: Entry
    everything: list[str]
    indexed: list[tuple[ValueIndex, ObservedQuery, IndexTerm]]


class Routes:
    """The observers of a process, filed so that each change finds the ones it concerns."""

    def __init__(self) -> None:
        self._numbers = itertools.count()
        self._everything: dict[str, dict[ObserverKey, Entry]] = {}  # collection -> observers
        self._indexes: dict[str, dict[str, ValueIndex]] = {}  # collection -> field -> index
        self._placements: dict[ObserverKey, _Placement] = {}
        # A joined collection -> the indexes whose terms route its changes (`Through`).
        self._through: dict[str, dict[int, ValueIndex]] = {}
        #: The last routed batch's rows' values through joins, read for routing:
        #: (collection, path) -> document id -> value (`Observer.apply`'s `joined`).
        self.joined_now: dict[tuple[str, str], dict[str, Hashable]] = {}

    def add(self, key: ObserverKey, observer: Observer) -> None:
        """File a new observer under every change of its collections (its first read is
        running: it must miss nothing until `index`)."""
        entry = (next(self._numbers), observer)
        names = sorted(observer.collections)
        for name in names:
            self._everything.setdefault(name, {})[key] = entry
        self._placements[key] = _Placement(entry, names, [])

    def index(self, key: ObserverKey, observer: Observer) -> None:
        """The observer holds its first read: file it by value where its queries allow."""
        placement = self._placements.get(key)
        if placement is None:
            return
        by_value = {name for name in placement.everything if _described(observer, name)}
        # A joined collection's changes are routed by the index of the query joining it:
        # that query must be filed by value itself.
        while dropped := {
            name
            for name in by_value
            if any(query.name not in by_value for query in observer.queries if name in query.related)
        }:
            by_value -= dropped
        for name in sorted(by_value):
            self._take_out(self._everything, name, key)
            placement.everything.remove(name)
            for query in observer.queries:
                if query.name != name:
                    continue
                term = query.term
                assert term is not None
                index = self._indexes.setdefault(name, {}).get(term.field)
                if index is None:
                    index = self._indexes[name][term.field] = ValueIndex(term.field, term)
                for value in term.values:
                    index.filed.setdefault(value, {})[key] = placement.entry
                if query.matcher is None:
                    index.partial_readers[key] = placement.entry
                index.size += 1
                index.learn(term, query.ids)
                placement.indexed.append((index, query, term))
        for index, query, term in placement.indexed:
            if query.via is not None and query.via in by_value and index.through is None:
                index.through, index.via = term.through, query.via
                self._through.setdefault(query.via, {})[id(index)] = index

    def remove(self, key: ObserverKey) -> None:
        placement = self._placements.pop(key, None)
        if placement is None:
            return
        for name in placement.everything:
            self._take_out(self._everything, name, key)
        for index, query, term in placement.indexed:
            for value in term.values:
                self._take_out(index.filed, value, key)
            index.partial_readers.pop(key, None)
            index.size -= 1
            if not index.size:  # its `held` would go stale: no change keeps it up to date
                fields = self._indexes[query.name]
                del fields[index.field]
                if not fields:
                    del self._indexes[query.name]
                if index.via is not None:
                    self._take_out(self._through, index.via, id(index))  # type: ignore[arg-type]

    def route(self, changes: list[Change]) -> list[tuple[ObserverKey, Observer, list[Change]]]:
        """Each observer the batch concerns, in the order they were made, with its changes
        in commit order."""
        names = {change.collection for change in changes}
        self.joined_now = {}
        if not any(name in self._indexes or name in self._through for name in names):  # every observer
            concerned: dict[ObserverKey, Entry] = {}
            for name in names:
                concerned.update(self._everything.get(name, {}))
            in_order = concerned.items() if len(names) == 1 else sorted(concerned.items(), key=_second_number)
            return [(key, observer, _of(observer, changes, names)) for key, (_n, observer) in in_order]
        currents, referring = self._joined_values(changes, names)
        self.joined_now = {
            (name, index.field): currents[id(index)]
            for name in names
            for index in self._indexes.get(name, {}).values()
            if currents.get(id(index)) is not None
        }
        routed: dict[ObserverKey, tuple[int, Observer, list[Change]]] = {}
        for change in changes:
            into: dict[ObserverKey, Entry] = dict(self._everything.get(change.collection, {}))
            for index in self._indexes.get(change.collection, {}).values():
                index.route(change, into, currents.get(id(index)))
            for index in self._through.get(change.collection, {}).values():
                index.route_through(change, into, referring.get(id(index)))
            for key, (number, observer) in into.items():
                found = routed.get(key)
                if found is None:
                    routed[key] = (number, observer, [change])
                else:
                    found[2].append(change)
        in_creation_order = sorted(routed.items(), key=_second_number)
        return [(key, observer, relevant) for key, (_n, observer, relevant) in in_creation_order]

    def _joined_values(self, changes: list[Change], names: set[str]) -> tuple[dict[int, Any], dict[int, Any]]:
        """For each index through a join: its changed rows' values now; and for each index
        a joined collection's changes are routed by: the rows referring to the changed
        ones. One query per index and batch, shared by all its observers (None when the
        query failed)."""
        currents: dict[int, Any] = {}
        referring: dict[int, Any] = {}
        for name in names:
            ids = list(dict.fromkeys(c.id for c in changes if c.collection == name and c.op != "delete"))
            for index in self._indexes.get(name, {}).values():
                if index.term.current is not None:
                    currents[id(index)] = _read(index.term.current, ids, index.field, name)
            for index in self._through.get(name, {}).values():
                assert index.through is not None
                referring[id(index)] = _read(index.through.referring, ids, index.field, name)
        return currents, referring

    def applied(self, key: ObserverKey, changes: list[Change]) -> None:
        """The observer has applied these changes: note the documents its indexed queries
        now hold (all of them, for a query the changes made it read again)."""
        placement = self._placements.get(key)
        if placement is None or not placement.indexed:
            return
        names = {change.collection for change in changes}
        for index, query, term in placement.indexed:
            if query.related & names:
                index.learn(term, query.ids)
            else:
                held = [c for c in changes if c.collection == query.name and c.id in query.ids]
                index.learn_from(term, held)

    def reloaded(self, key: ObserverKey) -> None:
        """The observer read its queries again: note what they hold now."""
        placement = self._placements.get(key)
        for index, query, term in placement.indexed if placement is not None else ():
            index.learn(term, query.ids)

    def forget_held(self) -> None:
        """Changes were lost (the LISTEN connection was): what each row was is unknown
        until every observer has read again (and `reloaded`)."""
        for fields in self._indexes.values():
            for index in fields.values():
                index.held.clear()

    def observed(self) -> bool:
        return bool(self._placements)

    def __repr__(self) -> str:
        everything = {name: len(group) for name, group in self._everything.items()}
        indexes = {name: {f: i.size for f, i in fields.items()} for name, fields in self._indexes.items()}
        return f"<Routes everything={everything} indexes={indexes}>"

    @staticmethod
    def _take_out(groups: dict[Any, dict[ObserverKey, Entry]], name: Any, key: ObserverKey) -> None:
        group = groups.get(name)
        if group is not None:
            group.pop(key, None)
            if not group:
                del groups[name]


def _read(read: Any, ids: list[str], field: str, name: str) -> Any:
    """What `read(ids)` returns, or None if it failed (logged, now and then)."""
    if not ids:
        return {}
    try:
        return read(ids)
    except Exception:
        count = _failures_logged.allow("joined values")
        if count is not None:
            logger.warning(
                "could not read %s for %s's changes: offered to every observer of it%s",
                field,
                name,
                left_out(count),
                exc_info=True,
            )
        return None


def _described(observer: Observer, name: str) -> bool:
    """Whether the observer's interest in the collection's changes is described by terms:
    each of its queries of the collection has one, and each query joining it does so by
    a term's own join (so its changes are routed through the term: `Through`)."""
    own = [query for query in observer.queries if query.name == name]
    joining = [query for query in observer.queries if name in query.related]
    return all(query.term is not None for query in own) and all(query.via == name for query in joining)


def _second_number(item: tuple[Any, tuple[Any, ...]]) -> int:
    number: int = item[1][0]
    return number


def _of(observer: Observer, changes: list[Change], names: set[str]) -> list[Change]:
    if names <= observer.collections:
        return changes
    return [change for change in changes if change.collection in observer.collections]
