"""`compile_matcher` decides membership in memory exactly as PostgreSQL does, or leaves it to PostgreSQL.

Each queryset below runs against a grid of rows with NULLs, edge values and
near-equal values; for every row, the predicate applied to the document's
fields as a Change payload delivers them must agree with the database.
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Count, F, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower

from dddp.changes import Change, decode, encode
from dddp.documents import document_fields, document_id
from dddp.matching import DOCUMENT_ID, MAX_INDEXED_VALUES, IndexTerm, compile_matcher, index_term
from tests.typesapp.models import Group, Sample

pytestmark = pytest.mark.django_db

U1 = uuid.UUID("12345678-1234-5678-1234-567812345678")
U2 = uuid.UUID("00000000-0000-0000-0000-000000000001")
D = datetime.date
UTC = datetime.timezone.utc

# One list of values per column; row k takes values[k % len(values)], so with
# lengths that share few factors the rows combine NULLs and values in many ways.
COLUMNS: dict[str, list[Any]] = {
    "num": [None, 0, 1, -1, 2, 2**31 - 1, -(2**31)],
    "big": [None, 0, 2**53 - 1, 2**53, 2**53 + 1, 2**60, -(2**63), 9, 10],
    "ratio": [
        None,
        0.0,
        -0.0,
        1.0,
        0.1 + 0.2,
        0.3,
        1.5,
        -1.5,
        1e308,
        math.inf,
        -math.inf,
        math.nan,
        5e-324,
    ],
    "label": [None, "", "a", "A", "a ", "é", "e\u0301", "Straße", "😀", "-1"],
    "flag": [None, True, False],
    "day": [None, D(2020, 1, 1), D(2019, 12, 31), D(2020, 1, 2), D(1, 1, 1), D(9999, 12, 31)],
    "amount": [None, Decimal("1.5"), Decimal("1.500"), Decimal("-0.001")],
    "stamp": [
        None,
        datetime.datetime(2020, 1, 1, tzinfo=UTC),
        datetime.datetime(2020, 1, 1, 0, 0, 0, 500, tzinfo=UTC),  # 0.5 ms later: same $date
    ],
    "uid": [None, U1, U2],
    "data": [None, {"a": 1}, [1, 2], "text"],
    "span": [
        None,
        datetime.timedelta(0),
        datetime.timedelta(microseconds=1),
        datetime.timedelta(days=10**6),
        datetime.timedelta(days=10**6, microseconds=1),
    ],
    "blob": [None, b"", b"\x00\xff", b"\x00"],
    "attachment": ["", "docs/a.txt"],
    "code": ["", "a", "B"],
}
ROWS = 48


@dataclass
class World:
    """The rows in the database, and their groups."""

    samples: list[Sample]
    g1: Group
    g2: Group
    g3: Group  # has no samples

    def sample(self, index: int) -> Sample:
        return self.samples[index]


@pytest.fixture
def world() -> World:
    g1, g2, g3 = Group.objects.bulk_create([Group(name="one"), Group(name="two"), Group(name="three")])
    groups = [None, g1, g2]
    rows = []
    for k in range(ROWS):
        values = {name: options[k % len(options)] for name, options in COLUMNS.items()}
        rows.append(Sample(group=groups[k % len(groups)], **values))
    rows.append(Sample())  # every nullable column NULL
    Sample.objects.bulk_create(rows)
    return World(list(Sample.objects.order_by("pk")), g1, g2, g3)


def delivered(instance: Sample) -> dict[str, Any]:
    """The fields a server receives for this row: a Change payload's, after its JSON round trip."""
    change = Change("save", "typesapp.sample", document_id(instance.pk), document_fields(instance))
    return decode(encode(change)).fields


IN_MEMORY = "in memory"  # must compile: it filters only on the row's own plain columns
EITHER = "either"  # may compile or defer; when compiled it must still agree


@dataclass
class Case:
    id: str
    build: Callable[[World], Any]
    expect: str = IN_MEMORY


def case(id: str, build: Callable[[World], Any], expect: str = IN_MEMORY) -> Any:
    return pytest.param(Case(id, build, expect), id=id)


def where(*args: Any, **kwargs: Any) -> Callable[[World], Any]:
    """A queryset builder for a filter that needs no rows."""
    return lambda w: Sample.objects.filter(*args, **kwargs)


AGREEMENT = [
    case("all", lambda w: Sample.objects.all()),
    # Integers.
    case("num exact", where(num=0)),
    case("num exact negative", where(num=-1)),
    case("num exact maximum", where(num=2**31 - 1)),
    case("num exact out of range", where(num=2**40)),
    case("num exact float truncates", where(num=1.5)),
    case("num exact string", where(num="2")),
    case("num in", where(num__in=[0, 2])),
    case("num in with None", where(num__in=[0, 1, None])),
    case("num in only None", where(num__in=[None])),
    case("num in empty", where(num__in=[])),
    case("num isnull", where(num__isnull=True)),
    case("num not isnull", where(num__isnull=False)),
    case("num = None is isnull", where(num=None)),
    case("num gt", where(num__gt=0)),
    case("num gte", where(num__gte=1)),
    case("num lt", where(num__lt=0)),
    case("num lte", where(num__lte=-1)),
    case("num gte float rounds up", where(num__gte=1.5)),
    case("num lt float rounds up", where(num__lt=1.5)),
    case("num gt float", where(num__gt=1.5)),
    case("big exact beyond 2**53", where(big=2**60)),
    case("big exact 2**53", where(big=2**53)),
    case("big in", where(big__in=[2**53 + 1, -(2**63), 0, None])),
    case("big gt", where(big__gt=9)),
    case("big lt", where(big__lt=2**53)),
    # Floats, with PostgreSQL's NaN: equal to itself and greater than every number.
    case("ratio exact", where(ratio=1)),
    case("ratio exact zero matches -0.0", where(ratio=0)),
    case("ratio exact 0.3 is not 0.1 + 0.2", where(ratio=0.3)),
    case("ratio exact infinity", where(ratio=math.inf)),
    case("ratio gt", where(ratio__gt=0)),
    case("ratio gte", where(ratio__gte=1.5)),
    case("ratio lt", where(ratio__lt=0)),
    case("ratio lte tiny", where(ratio__lte=5e-324)),
    case("ratio in with None", where(ratio__in=[1.5, -1.5, None])),
    case("ratio exact NaN", where(ratio=math.nan)),
    case("ratio gt 1e308 includes NaN", where(ratio__gt=1e308)),
    case("ratio lt infinity excludes NaN", where(ratio__lt=math.inf)),
    case("ratio in NaN", where(ratio__in=[math.nan])),
    case("not ratio gt 0", where(~Q(ratio__gt=0))),
    # Text (default, deterministic collation: equal means the same code points).
    case("label exact", where(label="a")),
    case("label exact is case sensitive", where(label="A")),
    case("label exact keeps trailing spaces", where(label="a ")),
    case("label exact empty is not NULL", where(label="")),
    case("label exact NFC is not NFD", where(label="é")),
    case("label exact emoji", where(label="😀")),
    case("label in with None", where(label__in=["a", "", None])),
    case("label isnull", where(label__isnull=True)),
    case("label not exact", where(~Q(label="a"))),
    case("exclude label empty", lambda w: Sample.objects.exclude(label="")),
    # Booleans.
    case("flag true", where(flag=True)),
    case("flag false", where(flag=False)),
    case("flag isnull", where(flag__isnull=True)),
    case("flag not true", where(~Q(flag=True))),
    case("exclude flag false", lambda w: Sample.objects.exclude(flag=False)),
    case("flag in with None", where(flag__in=[True, None])),
    # Dates.
    case("day exact", where(day=D(2020, 1, 1))),
    case("day exact from a string", where(day="2020-01-01")),
    case("day gt", where(day__gt=D(2020, 1, 1))),
    case("day gte", where(day__gte=D(2020, 1, 1))),
    case("day lt", where(day__lt=D(2020, 1, 1))),
    case("day lte", where(day__lte="2019-12-31")),
    case("day lt year 1", where(day__lt=D(1, 1, 2))),
    case("day gte year 9999", where(day__gte=D(9999, 12, 31))),
    case("day in with None", where(day__in=[D(2020, 1, 2), D(1, 1, 1), None])),
    case("not day lt", where(~Q(day__lt=D(2020, 1, 1)))),
    # UUIDs, however written.
    case("uid exact", where(uid=U1)),
    case("uid exact upper-case string", where(uid=str(U1).upper())),
    case("uid exact hex", where(uid=U1.hex)),
    case("uid in with None", where(uid__in=[U2, None])),
    case("uid not exact", where(~Q(uid=U1))),
    # Binary.
    case("blob exact", where(blob=b"\x00")),
    case("blob exact empty is not NULL", where(blob=b"")),
    # Foreign keys: by instance, by id, through the id column.
    case("group by instance", lambda w: Sample.objects.filter(group=w.g1)),
    case("group by id", lambda w: Sample.objects.filter(group=w.g2.pk)),
    case("group by id string", lambda w: Sample.objects.filter(group=str(w.g2.pk))),
    case("group_id", lambda w: Sample.objects.filter(group_id=w.g1.pk)),
    case("group__id needs no join", lambda w: Sample.objects.filter(group__id=w.g1.pk)),
    case("group in instances", lambda w: Sample.objects.filter(group__in=[w.g1, w.g3])),
    case("group in ids with None", lambda w: Sample.objects.filter(group__in=[w.g2.pk, None])),
    case("group isnull", where(group__isnull=True)),
    case("group with no rows", lambda w: Sample.objects.filter(group=w.g3)),
    case("exclude group", lambda w: Sample.objects.exclude(group=w.g1)),
    case("not group or num", lambda w: Sample.objects.filter(~Q(group=w.g1) | Q(num=0))),
    # AND, OR, NOT over nullable columns: SQL's three-valued logic.
    case("or", where(Q(num=0) | Q(flag=True))),
    case("and", where(Q(num=0) & Q(flag=True))),
    case("two filters", where(num__in=[0, 1], flag=False)),
    case("chained filters", lambda w: Sample.objects.filter(num__in=[0, 1]).filter(label__isnull=False)),
    case("not", where(~Q(num=0))),
    case("not not", where(~~Q(num=0))),
    case("not and not", where(~Q(num=0) & ~Q(flag=True))),
    case("not of or", where(~(Q(num=0) | Q(label="a")))),
    case("not of and", where(~(Q(num=0) & Q(label="a")))),
    case("isnull or not", where(Q(num__isnull=True) | ~Q(flag=False))),
    case("not in with None", where(~Q(num__in=[0, None]))),
    case("not in empty", where(~Q(num__in=[]))),
    case("exclude in empty", lambda w: Sample.objects.exclude(num__in=[])),
    case("exclude two", lambda w: Sample.objects.exclude(num=0, flag=True)),
    case("exclude then exclude", lambda w: Sample.objects.exclude(num=0).exclude(flag=True)),
    case("not lt or not", where(~Q(ratio__lt=1) | Q(day__lt=D(2020, 1, 1)))),
    case("or of ands", where((Q(num=1) & Q(flag=True)) | (Q(num=2) & ~Q(label="a")))),
    case("not of or of nots", where(~(~Q(flag=True) | ~Q(uid=U1)))),
    case("or with isnull False", where(Q(num=0) | Q(num=1), ~Q(label=None))),
    case("distinct", lambda w: Sample.objects.filter(num=0).distinct()),
    case("ordered", lambda w: Sample.objects.filter(Q(num=0) | Q(flag=False)).order_by("-label")),
    case("select_related joins only to read", lambda w: Sample.objects.select_related("group").filter(num=0)),
    # The primary key is the document id, not one of its fields: equality in memory,
    # ranges in the database (ids do not sort as keys).
    case("pk exact", lambda w: Sample.objects.filter(pk=w.sample(3).pk)),
    case("pk exact as text", lambda w: Sample.objects.filter(pk=str(w.sample(3).pk))),
    case("pk in", lambda w: Sample.objects.filter(pk__in=[w.sample(1).pk, w.sample(5).pk, None])),
    case("id exact and a column", lambda w: Sample.objects.filter(id=w.sample(7).pk, num__isnull=True)),
    case("pk or a column", lambda w: Sample.objects.filter(Q(pk=w.sample(2).pk) | Q(num=1))),
    case("exclude pk", lambda w: Sample.objects.exclude(pk=w.sample(0).pk)),
    case("exclude pk in", lambda w: Sample.objects.exclude(pk__in=[w.sample(0).pk, w.sample(9).pk])),
    case("id gt", lambda w: Sample.objects.filter(id__gt=w.sample(40).pk), EITHER),
    # A file column holds "" (not NULL) when there is no file.
    case("no file isnull", where(attachment__isnull=True), EITHER),
    case("no file exact empty", where(attachment=""), EITHER),
    case("file exact name", where(attachment="docs/a.txt"), EITHER),
    # Intervals beyond 2**53 microseconds lose their microseconds in a payload.
    case("span exact microsecond", where(span=datetime.timedelta(microseconds=1)), EITHER),
    case("span exact large", where(span=datetime.timedelta(days=10**6)), EITHER),
]


@pytest.mark.parametrize("spec", AGREEMENT)
def test_predicate_agrees_with_postgresql(world: World, spec: Case) -> None:
    queryset = spec.build(world)
    matcher = compile_matcher(queryset)
    if matcher is None:
        assert spec.expect == EITHER, "a filter on the row's own plain columns was left to the database"
        return
    in_database = set(queryset.values_list("pk", flat=True))
    disagreeing = [
        {"in memory": matcher(fields, doc_id), "in PostgreSQL": row.pk in in_database, "fields": fields}
        for row in world.samples
        if matcher(fields := delivered(row), doc_id := document_id(row.pk)) != (row.pk in in_database)
    ]
    assert not disagreeing, f"{len(disagreeing)} rows disagree, the first: {disagreeing[0]}"


def test_the_grid_makes_every_case_select_some_rows_and_not_others(world: World) -> None:
    """A filter that keeps all rows or none could agree by accident."""
    trivial = {"all", "num in only None", "num in empty", "num exact out of range", "group with no rows"}
    trivial |= {"no file isnull"}  # a file column is never NULL
    trivial |= {"not in empty", "exclude in empty"}  # every row, as in SQL
    for param in AGREEMENT:
        spec = param.values[0]
        count = spec.build(world).count()
        if spec.id in trivial:
            assert count in (0, len(world.samples)), spec.id
        else:
            assert 0 < count < len(world.samples), spec.id


DATABASE_DECIDES = [
    # Other tables, expressions, or a row set shaped by other rows.
    case("join", where(group__name="one")),
    case("join through isnull", where(group__name__isnull=True)),
    case("reverse relation", lambda w: Group.objects.filter(samples__num=0)),
    case("exclude reverse relation (subquery)", lambda w: Group.objects.exclude(samples__num=0)),
    case("subquery", lambda w: Sample.objects.filter(group__in=Group.objects.filter(name="one"))),
    case("F comparison", where(num=F("big"))),
    case("F arithmetic", where(num__gt=F("big") + 1)),
    case("Value", where(num=Value(1))),
    case("raw SQL", where(num=RawSQL("1", []))),
    case("slice", lambda w: Sample.objects.filter(num=0).order_by("pk")[:2]),
    case("distinct on", lambda w: Sample.objects.order_by("label", "pk").distinct("label")),
    case("annotation", lambda w: Sample.objects.annotate(one=Value(1)).filter(num=0)),
    case("annotation filter", lambda w: Sample.objects.annotate(twice=F("num") * 2).filter(twice=2)),
    case("alias", lambda w: Sample.objects.alias(low=Lower("label")).filter(low="a")),
    case("aggregate", lambda w: Group.objects.annotate(n=Count("samples")).filter(n__gt=1)),
    case("extra select", lambda w: Sample.objects.extra(select={"x": "1"}).filter(num=0)),
    case("extra where", lambda w: Sample.objects.extra(where=["num > 0"])),
    case("union", lambda w: Sample.objects.filter(num=0).union(Sample.objects.filter(num=1))),
    case("xor", where(Q(num=0) ^ Q(flag=True))),
    case("transform", where(day__year=2020)),
    # Lookups whose meaning is PostgreSQL's own.
    case("iexact", where(label__iexact="a")),
    case("contains", where(label__contains="a")),
    case("icontains", where(label__icontains="a")),
    case("startswith", where(label__startswith="a")),
    case("endswith", where(label__endswith="a")),
    case("regex", where(label__regex="^a")),
    case("uuid contains", where(uid__contains="1234")),
    # Columns whose payload form is not PostgreSQL's value.
    case("datetime exact", where(stamp=datetime.datetime(2020, 1, 1, tzinfo=UTC))),
    case("datetime gt", where(stamp__gt=datetime.datetime(2020, 1, 1, tzinfo=UTC))),
    case("datetime isnull", where(stamp__isnull=True)),
    case("decimal exact", where(amount=Decimal("1.5"))),
    case("decimal in", where(amount__in=[Decimal("1.5")])),
    case("decimal gt", where(amount__gt=0)),
    case("json exact", where(data={"a": 1})),
    case("json isnull", where(data__isnull=True)),
    case("json key", where(data__a=1)),
    case("db_collation exact", where(code="a")),
    case("db_collation in", where(code__in=["a", "B"])),
    # One part the database must decide makes the whole filter the database's.
    case("or with a join", where(Q(num=0) | Q(group__name="one"))),
    case("and with a datetime", where(num=0, stamp__isnull=True)),
    case("not with an iexact", where(~Q(label__iexact="a"))),
]


@pytest.mark.parametrize("spec", DATABASE_DECIDES)
def test_the_database_decides(world: World, spec: Case) -> None:
    assert compile_matcher(spec.build(world)) is None


def test_filters_on_plain_columns_next_to_a_datetime_column_still_compile(world: World) -> None:
    """Only the lookups decide: a model with datetime columns is not excluded as a whole."""
    assert compile_matcher(Sample.objects.filter(num=0, label="a")) is not None


# --- index terms: a condition every row of the queryset meets ------------------------------

INDEXED = [
    # (case, the field the term is on, or None when there must be none)
    case("num exact", where(num=0)),
    case("ratio exact zero matches -0.0", where(ratio=0.0)),
    case("ratio exact NaN", where(ratio=math.nan)),
    case("label exact NFC is not NFD", where(label="é")),
    case("flag false", where(flag=False)),
    case("day exact from a string", where(day="2020-01-01")),
    case("uid exact upper-case string", where(uid=str(U1).upper())),
    case("big exact beyond 2**53", where(big=2**53 + 1)),
    case("num in with None", where(num__in=[0, None, 2])),
    case("group by instance", lambda w: Sample.objects.filter(group=w.g1)),
    case("group in ids", lambda w: Sample.objects.filter(group__in=[w.g1.pk, w.g2.pk])),
    case("pk exact", lambda w: Sample.objects.filter(pk=w.sample(3).pk)),
    case("pk in", lambda w: Sample.objects.filter(pk__in=[w.sample(3).pk, w.sample(5).pk])),
    # What the matcher leaves to the database can still be indexed on a column of the row.
    case("a column and a join", where(num=0, group__name="one")),
    case("a column and a range", where(Q(num__gt=-5) & Q(label="a"))),
    case("a column and an OR", where(Q(flag=True), Q(num=0) | Q(num=1))),
    case("a column and a datetime", where(num=0, stamp__isnull=True)),
    # A column of the row a foreign key points to: read for a batch in one query.
    case("a join's column", where(group__name="one")),
    case("a join's column in", where(group__name__in=["one", "three"])),
    case("a join's column and a range", where(group__name="two", num__gt=-5)),
]

NOT_INDEXED = [
    case("or", where(Q(num=0) | Q(num=1))),
    case("not", where(~Q(num=0))),
    case("range", where(num__gt=0)),
    case("isnull", where(num__isnull=True)),
    case("a reverse relation", lambda w: Group.objects.filter(samples__num=0)),
    case("a join's isnull", where(group__name__isnull=True)),
    case("decimal exact", where(amount=Decimal("1.5"))),
    case("datetime exact", where(stamp=datetime.datetime(2020, 1, 1, tzinfo=UTC))),
    case("json exact", where(data={"a": 1})),
    case("db_collation exact", where(code="a")),
    case("iexact", where(label__iexact="a")),
    case("F comparison", where(num=F("big"))),
    case("slice", lambda w: Sample.objects.filter(num=0).order_by("pk")[:2]),
    case("distinct on", lambda w: Sample.objects.filter(num=0).order_by("label", "pk").distinct("label")),
    case("union", lambda w: Sample.objects.filter(num=0).union(Sample.objects.filter(num=1))),
    case("annotation", lambda w: Sample.objects.annotate(one=Value(1)).filter(num=0)),
    case("in too many", where(num__in=list(range(MAX_INDEXED_VALUES + 1)))),
]


def _term_holds(term: IndexTerm, row: Sample) -> bool:
    if term.field == DOCUMENT_ID:
        return document_id(row.pk) in term.values
    if term.current is not None:  # a joined row's column, read as the hub reads it
        return term.current([document_id(row.pk)]).get(document_id(row.pk)) in term.values
    value = delivered(row).get(term.field)
    return value is not None and term.key(value) in term.values


@pytest.mark.parametrize("spec", INDEXED)
def test_every_row_postgresql_returns_meets_the_index_term(world: World, spec: Case) -> None:
    queryset = spec.build(world)
    term = index_term(queryset)
    assert term is not None, "no index term"
    members = [row for row in world.samples if row.pk in set(queryset.values_list("pk", flat=True))]
    assert members, "the case selects no row: it could pass by accident"
    assert [row.pk for row in members if not _term_holds(term, row)] == []
    # And the term says something: rows outside it exist (so routing skips them).
    assert any(not _term_holds(term, row) for row in world.samples)


@pytest.mark.parametrize("spec", [param for param in AGREEMENT + DATABASE_DECIDES])
def test_any_index_term_found_holds_for_every_row_postgresql_returns(world: World, spec: Case) -> None:
    queryset = spec.build(world)
    term = index_term(queryset)
    if term is None:
        return
    members = set(queryset.values_list("pk", flat=True))
    assert [row.pk for row in world.samples if row.pk in members and not _term_holds(term, row)] == []


@pytest.mark.parametrize("spec", NOT_INDEXED)
def test_what_the_index_cannot_describe_has_no_term(world: World, spec: Case) -> None:
    assert index_term(spec.build(world)) is None


def test_of_several_conditions_the_key_then_a_relation_then_a_column_is_the_term(world: World) -> None:
    assert index_term(Sample.objects.filter(flag=True, num=0)).field == "num"  # type: ignore[union-attr]
    assert index_term(Sample.objects.filter(num=0, flag=True)).field == "num"  # type: ignore[union-attr]
    assert index_term(Sample.objects.filter(num=0, group=world.g1)).field == "group"  # type: ignore[union-attr]
    assert index_term(Sample.objects.filter(group=world.g1, pk=1)).field == DOCUMENT_ID  # type: ignore[union-attr]
    # A column of the row's own before one through a join (which costs a query).
    assert index_term(Sample.objects.filter(group__name="one", flag=True)).field == "flag"  # type: ignore[union-attr]
    joined = index_term(Sample.objects.filter(group__name="one"))
    assert joined is not None and joined.field == "group__name" and joined.current is not None
    # Of equals the last: a Collection's user rule narrows a publication's queryset last.
    assert index_term(Sample.objects.filter(num=0).filter(label="a")).field == "label"  # type: ignore[union-attr]
    term = index_term(Sample.objects.filter(group__in=[world.g1, world.g2]))
    assert term is not None and term.values == {document_id(world.g1.pk), document_id(world.g2.pk)}


def test_joined_terms_of_one_shape_share_their_readers_and_keep_their_own_values(world: World) -> None:
    """Ten thousand `author__email=` observers hold one pair of readers, not one each."""
    one, two = (index_term(Sample.objects.filter(group__name=name)) for name in ("one", "two"))
    assert one is not None and two is not None and one.values != two.values
    assert one.current is two.current and one.through is two.through
    assert one.current([document_id(world.sample(1).pk)]) == {document_id(world.sample(1).pk): "one"}


# --- through a join: a joined row's changes find the rows referring to it -------------------


def test_a_joined_term_reads_the_rows_referring_to_joined_rows_with_their_value_now(world: World) -> None:
    term = index_term(Sample.objects.filter(group__name="one"))
    assert term is not None and term.through is not None and term.through.table == Group._meta.db_table
    groups = [world.g1, world.g2, world.g3]
    expected: dict[str, dict[str, Any]] = {}
    for row in world.samples:
        if row.group_id is not None:
            group = next(g for g in groups if g.pk == row.group_id)
            expected.setdefault(document_id(group.pk), {})[document_id(row.pk)] = term.key(group.name)
    assert expected, "no sample has a group: the case could pass by accident"
    assert term.through.referring([document_id(g.pk) for g in groups]) == expected  # g3: none refer


def test_a_joined_term_reads_the_referring_rows_of_text_keyed_rows() -> None:
    from tests.typesapp.models import CharKeyed, Record

    named, unnamed = CharKeyed.objects.create(key="k-1", name="ann"), CharKeyed.objects.create(key="k 2")
    first = Record.objects.create(title="a", owner=named)
    second = Record.objects.create(title="b", owner=unnamed)
    Record.objects.create(title="c")  # no owner
    term = index_term(Record.objects.filter(owner__name="ann"))
    assert term is not None and term.through is not None
    assert term.through.referring(["k-1", "k 2", "k-3"]) == {
        "k-1": {document_id(first.pk): term.key("ann")},
        "k 2": {document_id(second.pk): term.key("")},
    }


def test_a_joined_term_routes_its_table_s_changes_only_when_nothing_else_joins_that_table() -> None:
    from tests.accountsapp.models import Secret

    # The owner's groups: a many-to-many table of the joined row, reached from it.
    term = index_term(Secret.objects.filter(owner__username="ann", owner__groups__name="staff"))
    assert term is not None and term.field == "owner__username" and term.through is not None
    # The owner's table joined a second time (other users): their changes concern other rows.
    twice = index_term(Secret.objects.filter(owner__username="ann", owner__groups__user__username="bob"))
    assert twice is not None and twice.field == "owner__username" and twice.through is None
    again = index_term(Sample.objects.filter(group__name="one", group__samples__group__name="two"))
    assert again is not None and again.through is None


@pytest.mark.parametrize("spec", INDEXED)
def test_a_term_that_is_the_whole_filter_holds_for_exactly_the_rows_postgresql_returns(
    world: World, spec: Case
) -> None:
    """Then membership needs no query of its own: the values read for routing decide it."""
    queryset = spec.build(world)
    term = index_term(queryset)
    assert term is not None
    if not term.whole:
        return
    members = set(queryset.values_list("pk", flat=True))
    assert {row.pk for row in world.samples if _term_holds(term, row)} == members


def test_only_a_join_s_column_with_nothing_else_is_a_whole_filter(world: World) -> None:
    whole = [
        index_term(where(group__name="one")(world)),
        index_term(where(group__name__in=["a", "b"])(world)),
    ]
    assert all(term is not None and term.whole for term in whole)
    for queryset in (
        where(group__name="two", num__gt=-5)(world),
        Sample.objects.filter(group__name="one").filter(group__samples__num=0),
    ):
        term = index_term(queryset)
        assert term is not None and term.field == "group__name" and not term.whole
