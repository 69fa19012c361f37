"""Deciding in memory whether a changed row belongs to a queryset.

A publication's queryset that filters only on its own model's columns, with
plain values and simple lookups, can be evaluated on a Change's fields with no
query at all. `compile_matcher` returns such a predicate of the fields and the
document id (for filters on the primary key: `pk=user_id`, `pk__in=[...]`),
or None when only the database can tell (joins, expressions, slices, lookups whose semantics depend
on collations or on precision the payload does not keep). The predicate uses
SQL's three-valued logic, so NULLs behave as in PostgreSQL.

`index_term` finds, for any queryset (joins or not), one condition that every
row it holds meets: a column of its own equal to one of a few values. The hub
files observers under those values (`dddp.server.routing`), so that a change
reaches only the observers whose rows its old or new values can be.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import lookups
from django.db.models.expressions import Col
from django.db.models.sql.where import AND, OR, WhereNode

from dddp.documents import document_id, document_pk, field_value
from dddp.protocol import ejson

#: A row's document fields in, True/False/None (SQL's unknown) out.
Predicate = Callable[[dict[str, Any]], bool | None]
#: A row's document fields and its document id in, whether the queryset holds it out.
Matcher = Callable[[dict[str, Any], str], bool]

#: Where a predicate on the primary key finds the document id among the fields: no field
#: has this name (Django refuses field names with "__", check fields.E002).
DOCUMENT_ID = "__id__"

_COMPARISONS = {
    lookups.GreaterThan: lambda a, b: a > b,
    lookups.GreaterThanOrEqual: lambda a, b: a >= b,
    lookups.LessThan: lambda a, b: a < b,
    lookups.LessThanOrEqual: lambda a, b: a <= b,
}


def compile_matcher(queryset: models.QuerySet[Any]) -> Matcher | None:
    """A predicate deciding membership from a document's fields, or None."""
    query = queryset.query
    if (
        query.is_sliced
        or query.distinct_fields
        or query.combinator
        or query.extra
        or query.annotations
        or joined_aliases(query)  # other tables decide too
    ):
        return None
    predicate = _compile(query.where, query.get_initial_alias())
    if predicate is None:
        return None
    if _reads_primary_key(query.where):  # the only case that pays for a copy of the fields
        return lambda fields, doc_id: predicate({**fields, DOCUMENT_ID: doc_id}) is True
    return lambda fields, doc_id: predicate(fields) is True


def _reads_primary_key(node: Any) -> bool:
    if isinstance(node, WhereNode):
        return any(_reads_primary_key(child) for child in node.children)
    return (
        isinstance(node, lookups.Lookup)
        and bool(getattr(node.lhs, "target", None))
        and node.lhs.target.primary_key
    )


def joined_aliases(query: Any) -> list[str]:
    """The aliases of the other tables a query really joins.

    A join Django found it does not need (`author=3` is `author_id = 3`) stays
    in `alias_map` with a reference count of 0.
    """
    return [alias for alias in list(query.alias_map)[1:] if query.alias_refcount.get(alias)]


def _compile(node: Any, alias: str | None) -> Predicate | None:
    if isinstance(node, WhereNode):
        return _compile_where(node, alias)
    if isinstance(node, lookups.Lookup):
        return _compile_lookup(node, alias)
    return None


def _compile_where(node: WhereNode, alias: str | None) -> Predicate | None:
    children = [_compile(child, alias) for child in node.children]
    if any(child is None for child in children):
        return None
    parts: list[Predicate] = [child for child in children if child is not None]
    if node.connector == AND:
        combined = _all(parts)
    elif node.connector == OR:
        combined = _any(parts)
    else:  # XOR (Django 4.2+) and anything newer: leave it to the database
        return None
    if node.negated:
        return lambda fields: None if (value := combined(fields)) is None else not value
    return combined


def _all(parts: list[Predicate]) -> Predicate:
    def evaluate(fields: dict[str, Any]) -> bool | None:
        result: bool | None = True
        for part in parts:
            value = part(fields)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    return evaluate


def _any(parts: list[Predicate]) -> Predicate:
    def evaluate(fields: dict[str, Any]) -> bool | None:
        result: bool | None = False
        for part in parts:
            value = part(fields)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    return evaluate


def _compile_lookup(lookup: lookups.Lookup[Any], alias: str | None) -> Predicate | None:
    lhs, rhs = lookup.lhs, lookup.rhs
    if not isinstance(lhs, Col) or lhs.alias != alias or hasattr(rhs, "resolve_expression"):
        return None
    field = lhs.target
    if field.primary_key:
        return _compile_document_id(lookup, field, rhs)
    if not _exact_in_memory(field):
        return None
    try:
        return _compile_comparison(lookup, field, rhs)
    except (TypeError, ValueError):  # a value we cannot put in document form
        return None


def _compile_comparison(
    lookup: lookups.Lookup[Any], field: models.Field[Any, Any], rhs: Any
) -> Predicate | None:
    name = field.name
    key = _sort_key(field)
    if isinstance(lookup, lookups.IsNull):
        wanted_null = bool(rhs)
        return lambda fields: (fields.get(name) is None) == wanted_null
    if isinstance(lookup, lookups.Exact):
        value = key(_as_document_value(field, rhs))
        return lambda fields: None if (got := fields.get(name)) is None else key(got) == value
    if isinstance(lookup, lookups.In):
        values = [key(_as_document_value(field, item)) for item in rhs if item is not None]
        return lambda fields: None if (got := fields.get(name)) is None else key(got) in values
    for lookup_class, compare in _COMPARISONS.items():
        if isinstance(lookup, lookup_class) and _ordered_in_memory(field):
            bound = key(_as_document_value(field, rhs))
            return lambda fields: None if (got := fields.get(name)) is None else compare(key(got), bound)
    return None


def _compile_document_id(
    lookup: lookups.Lookup[Any], field: models.Field[Any, Any], rhs: Any
) -> Predicate | None:
    """`pk=` and `pk__in=`, on the document id (the primary key is not one of the fields).

    A key is never NULL, and ids are equal exactly when keys are (`document_id`
    is one-to-one); an order of ids is not that of keys, so ranges are the
    database's, as is a key that is also a relation (multi-table inheritance).
    """
    if field.is_relation:
        return None
    try:
        if isinstance(lookup, lookups.Exact) and rhs is not None:
            wanted = document_id(field.to_python(rhs))
            return lambda fields: fields[DOCUMENT_ID] == wanted
        if isinstance(lookup, lookups.In):
            ids = frozenset(document_id(field.to_python(item)) for item in rhs if item is not None)
            return lambda fields: fields[DOCUMENT_ID] in ids
    except (TypeError, ValidationError):
        return None
    return None


def _sort_key(field: models.Field[Any, Any]) -> Callable[[Any], Any]:
    """Makes document values compare in Python as PostgreSQL compares the column's values."""
    if isinstance(field, models.IntegerField):
        # Integers beyond 2**53 travel as strings (EJSON: JavaScript would round them).
        return lambda value: int(value) if isinstance(value, str) else value
    if isinstance(field, models.FloatField):
        # PostgreSQL: NaN equals NaN and sorts above every number.
        return lambda value: (1, 0.0) if isinstance(value, float) and math.isnan(value) else (0, value)
    return lambda value: value


def _exact_in_memory(field: models.Field[Any, Any]) -> bool:
    """Equality in Python is PostgreSQL's for this field's document values.

    Not for datetimes and durations (payloads keep milliseconds, the column
    microseconds), decimals (documents hold strings: "1.0" != "1.00"), JSON,
    files (an empty one is "" in the column, null in the document), or text
    with a non-deterministic collation.
    """
    if isinstance(
        field,
        (models.DateTimeField, models.DurationField, models.DecimalField, models.JSONField, models.FileField),
    ):
        return False
    if getattr(field, "db_collation", None):
        return False
    return True


def _ordered_in_memory(field: models.Field[Any, Any]) -> bool:
    """Ordering in Python is PostgreSQL's: numbers, and dates (ISO strings sort as dates)."""
    if field.is_relation:
        return False
    return isinstance(
        field,
        (models.IntegerField, models.FloatField, models.DateField, models.BigAutoField, models.AutoField),
    ) and not isinstance(field, models.DateTimeField)


def _as_document_value(field: models.Field[Any, Any], value: Any) -> Any:
    """A filter's value in the form documents hold it (as a Change payload decodes)."""
    if isinstance(value, (datetime.datetime, decimal.Decimal)):
        raise ValueError("not comparable in memory")  # excluded by _exact_in_memory
    value = field.get_prep_value(value) if not field.is_relation else value
    return ejson.from_json_value(ejson.to_json_value(field_value(field, value)))


#: An In lookup with more values than this is not indexed: a member's value is not
#: known from its document (a Collection may reshape it), so each member is filed
#: under every value of the list.
MAX_INDEXED_VALUES = 32


@dataclass(frozen=True)
class IndexTerm:
    """A condition every row of a queryset meets: its `field` has one of `values`.

    Values are routing keys: `key(document value)` of a row is in `values`
    exactly when PostgreSQL finds the column equal to one of the filter's values.
    """

    field: str  # a field name, DOCUMENT_ID for the primary key, or a lookup path through a join
    values: frozenset[Hashable]
    key: Callable[[Any], Hashable]
    #: For a column of a joined row (`author__email`): the routing keys of the given
    #: documents' values now, read in one query (a row gone, or NULL there, is left out).
    current: Callable[[list[str]], dict[str, Hashable]] | None = None
    #: For a column of a joined row that nothing else of the queryset joins to: how that
    #: row's own changes find the observers they concern.
    through: Through | None = None
    #: The term is the whole filter (no other condition, no other join): a row is a member
    #: exactly when its value is one of `values`.
    whole: bool = False


@dataclass(frozen=True)
class Through:
    """The joined rows of a joined term, whose changes are routed by the term as well.

    A change of an author can concern only the observers of its books (the rows
    whose foreign key points to it), and only those whose term's values hold the
    author's value now or held it before, while they held one of its books.
    """

    table: str  # the joined model's table (whose Collection's changes these are)
    #: The given joined rows' documents' (books') ids, each with the routing key of the
    #: joined value now (None: NULL), read in one query: joined id -> document id -> key.
    referring: Callable[[list[str]], dict[str, dict[str, Hashable | None]]]


def index_term(queryset: models.QuerySet[Any]) -> IndexTerm | None:
    """The best `IndexTerm` of a queryset's top-level conditions, or None.

    A conjunct `column = value` (or `column IN (...)`) of the WHERE clause, on
    the queryset's own table, is a necessary condition of membership whatever
    else the queryset filters on, joins included. Of several, the primary key
    is preferred, then a relation (an owner, an author), then any other column,
    booleans last (they split observers in two at most); of equals, the last one,
    which is the narrowing by the user (`dddp.visibility`) when there is one.
    None when membership depends on other rows too (slices, DISTINCT ON, unions,
    aggregates).
    """
    query = queryset.query
    if query.is_sliced or query.distinct_fields or query.combinator or query.extra or query.annotations:
        return None
    alias = query.get_initial_alias()
    best: tuple[int, IndexTerm] | None = None
    for lookup in _conjuncts(query.where):
        term = _term(lookup, alias)
        if term is None:
            term = _joined_term(queryset, lookup, alias)
            if term is not None and (best is None or best[0] < 0):
                best = (-1, term)  # a column of the row's own is known without a query
            continue
        field = lookup.lhs.target
        rank = 3 if field.primary_key else 2 if field.is_relation else 0 if _is_boolean(field) else 1
        if best is None or rank >= best[0]:
            best = (rank, term)
    return best[1] if best is not None else None


def _conjuncts(node: WhereNode) -> list[Any]:
    """The lookups that must all hold for a row to be in: the top-level AND, flattened."""
    if node.negated or node.connector != AND:
        return []
    found = []
    for child in node.children:
        if isinstance(child, WhereNode):
            found += _conjuncts(child)
        elif isinstance(child, lookups.Lookup):
            found.append(child)
    return found


def _term(lookup: lookups.Lookup[Any], alias: str | None) -> IndexTerm | None:
    lhs = lookup.lhs
    if not isinstance(lhs, Col) or lhs.alias != alias:
        return None
    return _column_term(lookup)


def _column_term(lookup: lookups.Lookup[Any]) -> IndexTerm | None:
    """The term of a lookup on a column (of whichever table), if it is one."""
    lhs, rhs = lookup.lhs, lookup.rhs
    if hasattr(rhs, "resolve_expression"):
        return None
    if isinstance(lookup, lookups.Exact):
        if rhs is None:
            return None
        items = [rhs]
    elif isinstance(lookup, lookups.In) and isinstance(rhs, (list, tuple, set, frozenset)):
        items = [item for item in rhs if item is not None]  # NULL IN (...) is never true
        if len(items) > MAX_INDEXED_VALUES:
            return None
    else:
        return None
    field = lhs.target
    try:
        if field.primary_key:
            if field.is_relation:  # multi-table inheritance: see _compile_document_id
                return None
            ids = frozenset(document_id(field.to_python(item)) for item in items)
            return IndexTerm(DOCUMENT_ID, ids, _same)
        if not _exact_in_memory(field):
            return None
        key = _sort_key(field)
        values = frozenset(key(_as_document_value(field, item)) for item in items)
    except (TypeError, ValueError, ValidationError):  # unhashable, or no document form
        return None
    return IndexTerm(field.name, values, key)


def _joined_term(queryset: models.QuerySet[Any], lookup: Any, alias: str | None) -> IndexTerm | None:
    """A term on a column of the row a foreign key of the queryset's own points to
    (`author__email=...`): one hop, forward, so each row has one such value or none."""
    lhs = lookup.lhs
    if not isinstance(lhs, Col) or lhs.alias == alias:
        return None
    join = queryset.query.alias_map.get(lhs.alias)
    link = getattr(join, "join_field", None)
    model = queryset.model
    if (
        join is None
        or getattr(join, "parent_alias", None) != alias
        or not isinstance(link, models.ForeignKey)
        or link.model._meta.concrete_model is not model._meta.concrete_model
        or lhs.target.primary_key
        or lhs.target.model._meta.concrete_model is not link.related_model._meta.concrete_model
    ):
        return None
    own = _column_term(lookup)
    if own is None:
        return None
    field = lhs.target
    joined = link.related_model
    assert joined is not None and not isinstance(joined, str)  # (a resolved foreign key)
    only_through = _joins_only_through(queryset.query, lhs.alias, joined)
    current, through = _joined_readers(model, link, field, queryset.db, only_through)  # type: ignore[arg-type]
    where = queryset.query.where
    whole = where.children == [lookup] and joined_aliases(queryset.query) == [lhs.alias]
    return IndexTerm(f"{link.name}__{field.name}", own.values, own.key, current, through, whole)


@functools.lru_cache(maxsize=1024)
def _joined_readers(
    model: type[models.Model],
    link: models.ForeignKey[Any, Any],
    field: models.Field[Any, Any],
    using: str,
    only_through: bool,
) -> tuple[Callable[[list[str]], dict[str, Hashable]], Through | None]:
    """A joined term's readers (`IndexTerm.current`, and `Through` when the term's join is
    the only one to the joined rows): the same for every observer of one queryset shape,
    whatever its values, so made once for all of them."""
    path = f"{link.name}__{field.name}"
    key = _sort_key(field)

    def current(doc_ids: list[str]) -> dict[str, Hashable]:
        pks = [document_pk(model, doc_id) for doc_id in doc_ids]
        rows = model._base_manager.using(using).filter(pk__in=pks).values_list("pk", path)
        return {document_id(pk): key(_as_document_value(field, raw)) for pk, raw in rows if raw is not None}

    if not only_through:
        return current, None
    joined = link.related_model
    assert joined is not None and not isinstance(joined, str)

    def referring(joined_ids: list[str]) -> dict[str, dict[str, Hashable | None]]:
        pks = [document_pk(joined, joined_id) for joined_id in joined_ids]
        rows = (
            model._base_manager.using(using)
            .filter(**{f"{link.name}__pk__in": pks})
            .values_list("pk", f"{link.name}__pk", path)
        )
        found: dict[str, dict[str, Hashable | None]] = {}
        for pk, joined_pk, raw in rows:
            value = key(_as_document_value(field, raw)) if raw is not None else None
            found.setdefault(document_id(joined_pk), {})[document_id(pk)] = value
        return found

    return current, Through(joined._meta.db_table, referring)


def _joins_only_through(query: Any, alias: str, joined: type[models.Model]) -> bool:
    """Whether every join of the query to the joined model's rows (its table, or its
    many-to-many tables, whose changes are sent as its own) is the term's join itself or
    starts there: then a change of one of those rows concerns only the rows referring to
    it (an author's tags, not a mentor's, whose changes concern other authors' books)."""
    own_m2m = {m2m.m2m_db_table() for m2m in joined._meta.many_to_many}
    for other in joined_aliases(query):
        join = query.alias_map[other]
        if other == alias:
            continue
        if join.table_name == joined._meta.db_table:
            return False
        if join.table_name in own_m2m and getattr(join, "parent_alias", None) != alias:
            return False
    return True


def _same(value: Any) -> Any:
    return value


def _is_boolean(field: models.Field[Any, Any]) -> bool:
    return isinstance(field, models.BooleanField) or bool(field.choices)
