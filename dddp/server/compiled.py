"""A publication's querysets compiled to SQL once: the observer's key, and its reads.

Every new subscription costs each of its querysets' compilation, because the
SQL says which subscriptions share an observer (`dddp.server.observer.shared_key`).
The observer's first read then had Django build and compile a second query
(a `values_list` of the published fields), and new observers of one shape
read together had their WHERE clauses ORed into a third, with one annotation
each: for ten thousand clients subscribing with distinct parameters, those
were a third of the server's work.

Here the key's compilation is also the read: a queryset that selects its
model's own columns, all of them and nothing else (no `values()`, `only()`,
`annotate()`, `select_related()`, slice, union or inherited table), reads
its published fields with its own SQL as compiled, through the compiler's own
converters (`ReadPlan`, one per SQL text, shared by every observer of that
shape). Any other queryset is read through Django as before.

Observers whose SQL is the same but for its parameters are read together by
one statement (`read_together`), as Hasura's multiplexed live queries answer
many subscribers' variables with one: their SQLs joined by UNION ALL, each row
tagged with its observer's number. Each branch is its observer's own query,
so PostgreSQL returns exactly what each would read alone, joins, NULLs and
three-valued logic included.

Most subscriptions are of a shape already compiled: the same publication with
other parameters. Of such a queryset only the WHERE clause is compiled (the
select list, joins and ordering were a third of the compiler's work), and the
rest of its SQL is the shape's (`_Shape`). Two querysets are of one shape when
everything Django's compiler reads of them but the WHERE clause is equal
(`_shape_key`): their model, their joins as they stand (tables, aliases, join
types, reference counts) and a short list of plain settings (ordering,
distinct); anything else set on a query (annotations, extra, slices, deferred
fields, select_related, ...) gives no shape, and the whole queryset is compiled
each time, as before. The WHERE clause is always compiled in full, because
its text depends on the values (`flag=False` is `NOT "flag"`, `num__in=[1, 2]`
has two placeholders, `x=None` is `IS NULL`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connections, models
from django.db.models.expressions import Col
from django.db.models.sql.datastructures import BaseTable, Join

from dddp.documents import value_attnames

#: Rows read at once: a read reaching this many is read again through Django, in
#: chunks of this size by a server-side cursor, so that a big publication is never
#: held in memory twice over (`values_rows`).
CHUNK_ROWS = 2000

#: The SQL text of a queryset that has no rows whatever else (`.none()`, `pk__in=[]`).
EMPTY = "EMPTY"

#: Read plans kept, by (database, model, SQL): one per publication shape in use.
MAX_PLANS = 1000


@dataclass(frozen=True, eq=False)
class ReadPlan:
    """How to read the published fields of a queryset from its own SQL."""

    alias: str  # the database
    sql: str
    #: A row as the SQL selects it -> as `value_attnames` orders it (pk first); and the
    #: same for a row read together, after its observer's number.
    picks: Callable[[Sequence[Any]], tuple[Any, ...]]
    tagged_picks: Callable[[Sequence[Any]], tuple[Any, ...]]
    #: (column, converters, expression): Django's from_db_value and backend converters.
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]


@dataclass(frozen=True)
class CompiledQuery:
    """One queryset as compiled: its model's label, SQL and parameters, and its read plan
    (None: read through Django)."""

    label: str
    sql: str
    params: tuple[Any, ...]
    plan: ReadPlan | None


_plans: dict[tuple[str, str, str], ReadPlan] = {}


@dataclass(frozen=True, eq=False)
class _Shape:
    """The SQL of every queryset of one shape, but for its WHERE clause; and its read plan's
    parts (each SQL text gets its own `ReadPlan`, as `read_together` needs)."""

    head: str  # up to and including "WHERE "
    tail: str  # after the WHERE clause
    model: Any
    picks: Callable[[Sequence[Any]], tuple[Any, ...]]
    tagged_picks: Callable[[Sequence[Any]], tuple[Any, ...]]
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]


_shapes: dict[tuple[Any, ...], _Shape] = {}

#: What `_shape_key` reads of a query's attributes (`Query.__dict__`: a fresh query has
#: only its first few; setting any other, `order_by("x")` for one, adds it there):
#: build-time bookkeeping that the compiler does not read;
_BOOKKEEPING = frozenset({"where", "used_aliases", "_lookup_joins", "filter_is_sticky"})
#: ones that give a shape only when empty;
_EMPTY_ONLY = frozenset(
    {
        "annotations",
        "extra",
        "extra_order_by",
        "distinct_fields",
        "external_aliases",
        "_filtered_relations",
        "_annotation_select_cache",
        "_extra_select_cache",
    }
)
#: and plain settings, part of the shape by value. Any other attribute gives no shape.
_SETTINGS = frozenset(
    {"model", "alias_cols", "base_table", "order_by", "default_ordering", "standard_ordering", "distinct"}
)


def compile_queries(returned: Any) -> list[CompiledQuery] | None:
    """Each queryset compiled, or None: not a list of querysets, or one that does not
    compile (the observer's own checks then say what is wrong)."""
    if not isinstance(returned, list | tuple):
        return None
    compiled = []
    for queryset in returned:
        if not isinstance(queryset, models.QuerySet):
            return None
        try:
            compiled.append(compile_queryset(queryset))
        except Exception:  # noqa: BLE001 - see above
            return None
    return compiled


def compile_queryset(queryset: models.QuerySet[Any]) -> CompiledQuery:
    label = queryset.model._meta.label
    using = queryset.db  # (the router's answer: asked once)
    query = queryset.query
    key = _shape_key(query, using)  # (before compiling: as_sql may add joins for an ordering)
    try:
        shape = None if key is None else _shapes.get(key)
    except TypeError:  # (a join field that cannot be hashed)
        key = shape = None
    if shape is not None:
        try:
            where, params = query.get_compiler(using=using).compile(query.where)
        except EmptyResultSet:  # (as as_sql raises it)
            return CompiledQuery(label, EMPTY, (), None)
        except FullResultSet:
            where = ""  # no WHERE clause: compiled in full below
        if where:
            sql = shape.head + where + shape.tail
            return CompiledQuery(label, sql, tuple(params), _shape_plan(shape, using, sql))
    compiler = query.get_compiler(using=using)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return CompiledQuery(label, EMPTY, (), None)
    plan = _plan(queryset, using, compiler, sql)
    if key is not None and shape is None and plan is not None:
        _learn_shape(key, query, using, sql, params, plan)
    return CompiledQuery(label, sql, tuple(params), plan)


def _shape_key(query: Any, using: str) -> tuple[Any, ...] | None:
    """What the compiler reads of the query but its WHERE clause, or None (no shape)."""
    key: list[Any] = [using]
    for name, value in query.__dict__.items():
        if name in _BOOKKEEPING:
            continue
        if name in _EMPTY_ONLY:
            if value:
                return None
        elif name == "alias_map":
            tables: list[tuple[Any, ...]] = []
            for table in value.values():
                if type(table) is Join and table.filtered_relation is None:
                    tables.append(
                        (
                            table.table_name,
                            table.parent_alias,
                            table.table_alias,
                            table.join_type,
                            table.join_field,
                            table.nullable,
                        )
                    )
                elif type(table) is BaseTable:
                    tables.append((table.table_name, table.table_alias))
                else:
                    return None
            key.append((name, tuple(tables)))
        elif name == "alias_refcount":
            key.append((name, tuple(value.items())))
        elif name == "table_map":
            key.append((name, tuple((table, tuple(aliases)) for table, aliases in value.items())))
        elif name in _SETTINGS:
            if type(value) is tuple and not all(type(item) is str for item in value):
                return None  # (an ordering by an expression)
            key.append((name, value))
        else:
            return None
    where = query.where
    if where.contains_aggregate or where.contains_over_clause:
        return None  # (split into HAVING or QUALIFY)
    return tuple(key)


def _learn_shape(key: tuple[Any, ...], query: Any, using: str, sql: str, params: Any, plan: ReadPlan) -> None:
    """Keep the shape of a query compiled in full, when its SQL is exactly a head, its
    WHERE clause as compiled alone, and a tail, and its only parameters the WHERE's (as
    many: the others would be before or after them, and a bytes parameter is wrapped in
    a new object each time)."""
    try:
        where, where_params = query.get_compiler(using=using).compile(query.where)
    except (EmptyResultSet, FullResultSet):
        return
    marker = " WHERE " + where
    if not where or len(where_params) != len(params) or sql.count(marker) != 1:
        return
    head, tail = sql.split(marker)
    keep_bounded(
        _shapes,
        key,
        _Shape(head + " WHERE ", tail, query.model, plan.picks, plan.tagged_picks, plan.converters),
    )


def _shape_plan(shape: _Shape, using: str, sql: str) -> ReadPlan:
    key = (using, shape.model._meta.label, sql)
    plan = _plans.get(key)
    if plan is None:
        plan = keep_bounded(
            _plans, key, ReadPlan(using, sql, shape.picks, shape.tagged_picks, shape.converters)
        )
    return plan


def _plan(queryset: models.QuerySet[Any], using: str, compiler: Any, sql: str) -> ReadPlan | None:
    """The read plan of a compiled queryset, if its SQL selects exactly its model's columns."""
    key = (using, queryset.model._meta.label, sql)
    plan = _plans.get(key)
    if plan is not None:
        return plan
    query = queryset.query
    if query.is_sliced or query.combinator or query.select_related or query.extra_select:
        return None  # (a slice's LIMIT, or columns of other tables)
    selected = []
    for expression, _sql, _alias in compiler.select:
        if type(expression) is not Col or expression.alias != query.base_table:
            return None  # an annotation, an inherited table's column
        selected.append(expression.target.attname)
    wanted = value_attnames(queryset.model)
    if not set(wanted) <= set(selected):
        return None  # only(), defer()
    converters = compiler.get_converters([expression for expression, _sql, _alias in compiler.select])
    columns = [selected.index(name) for name in wanted]
    plan = ReadPlan(
        alias=using,
        sql=sql,
        picks=_picker(columns),
        tagged_picks=_picker([column + 1 for column in columns]),
        converters=tuple((column, tuple(funcs), expr) for column, (funcs, expr) in converters.items()),
    )
    return keep_bounded(_plans, key, plan)


def keep_bounded(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    """`value`, kept in `cache` under `key`; a full cache is emptied first (shapes come
    from code, not from clients: this is rare)."""
    if len(cache) >= MAX_PLANS:
        cache.clear()
    cache[key] = value
    return value


def _picker(columns: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    if len(columns) == 1:  # (itemgetter of one index gives the item, not a tuple)
        only = columns[0]
        return lambda row: (row[only],)
    return operator.itemgetter(*columns)


def read_rows(compiled: CompiledQuery) -> list[tuple[Any, ...]] | None:
    """The queryset's rows as `value_attnames` tuples, or None when there are CHUNK_ROWS or
    more (to be read through Django, in chunks)."""
    plan = compiled.plan
    assert plan is not None
    rows = _fetch(plan, f"{plan.sql} LIMIT {CHUNK_ROWS}", compiled.params)
    if len(rows) >= CHUNK_ROWS:
        return None
    return [plan.picks(row) for row in _converted(plan, rows, 0)]


def read_together(queries: list[CompiledQuery]) -> list[list[tuple[Any, ...]]] | None:
    """The rows of each of these queries (of one plan), as `read_rows` gives them, read by
    one statement; None when there are CHUNK_ROWS or more in all (each is read alone)."""
    plan = queries[0].plan
    assert plan is not None and all(query.plan is plan for query in queries)
    branches = " UNION ALL ".join(
        f"(SELECT {number} AS dddp_observer, dddp_read.* FROM ({plan.sql}) AS dddp_read)"
        for number in range(len(queries))
    )
    params = tuple(param for query in queries for param in query.params)
    rows = _fetch(plan, f"{branches} LIMIT {CHUNK_ROWS}", params)
    if len(rows) >= CHUNK_ROWS:
        return None
    results: list[list[tuple[Any, ...]]] = [[] for _ in queries]
    picks = plan.tagged_picks
    for row in _converted(plan, rows, 1):
        results[row[0]].append(picks(row))
    return results


def values_rows(values: models.QuerySet[Any], many: bool = False) -> Iterable[Any]:
    """A values_list's rows: one plain query when they are few, as most reads' are (a
    server-side cursor costs four transactions and round trips in autocommit: DECLARE,
    two FETCHes, CLOSE); when they are not (or are known not to be: `many`), all of them
    through a cursor, so that a big publication is never held in memory twice over."""
    if not many:
        few = list(values[:CHUNK_ROWS])  # (LIMIT with no ORDER BY: the planner stops early)
        if len(few) < CHUNK_ROWS:
            return few
    return values.iterator(chunk_size=CHUNK_ROWS)


def _fetch(plan: ReadPlan, sql: str, params: tuple[Any, ...]) -> list[Any]:
    with connections[plan.alias].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()  # type: ignore[no-any-return]


def _converted(plan: ReadPlan, rows: list[Any], offset: int) -> list[Any]:
    """The rows with Django's converters applied (as its compiler's `apply_converters`),
    to the columns `offset` places to the right."""
    if not plan.converters:
        return rows
    connection = connections[plan.alias]
    converted = []
    for row in map(list, rows):
        for column, funcs, expression in plan.converters:
            value = row[column + offset]
            for func in funcs:
                value = func(value, expression, connection)
            row[column + offset] = value
        converted.append(row)
    return converted
