"""A publication's querysets compiled once (dddp.server.compiled): the SQL of the observer's
key is also its read, and the reads of one shape go together by UNION ALL.

What a read from the compiled SQL gives must be exactly what Django's own read gives
(a values_list of the published fields through the model's converters): every field
type, joins, orderings, and the fall back to Django where the SQL does not select the
published fields as it stands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import F, Q, QuerySet

from dddp.api import API, Publication
from dddp.server import compiled as compiled_module
from dddp.server.compiled import EMPTY, compile_queries, compile_queryset
from dddp.server.observer import Observer, _run, publication_queries, read_together
from tests.test_matching import AGREEMENT, DATABASE_DECIDES, Case, World, case
from tests.test_matching import world as world  # (the fixture: every field type, NULLs)
from tests.testapp.models import Author, Book, DatedNote, Note, Tag
from tests.typesapp.models import CharKeyed, CharKeyedProfile, Group, Record, Sample, UuidKeyed

pytestmark = pytest.mark.django_db


def querying(*querysets: Callable[[Any], QuerySet[Any]]) -> type[Publication]:
    """A publication of one parameter whose querysets are these functions of it."""

    class Querying(Publication):
        def get_queries(self, param: Any) -> list[QuerySet[Any]]:
            return [make(param) for make in querysets]

    return Querying


def observed(publication: type[Publication], *params: Any) -> Observer:
    """An observer as the hub makes it: its querysets compiled once, for its key and reads."""
    returned = publication_queries(API, publication, list(params), None)
    return Observer(API, publication, list(params), None, returned, compile_queries(returned))


def read_by_django(observer: Observer) -> list[dict[str, dict[str, Any]]]:
    """What the observer reads with its querysets alone, as before there were plans."""
    reads = []
    for query in observer.queries:
        compiled, query.compiled = query.compiled, None
        try:
            reads.append(_run(query))
        finally:
            query.compiled = compiled
    return reads


@pytest.mark.parametrize(
    "make",
    [
        lambda _: Sample.objects.all(),
        lambda _: Sample.objects.filter(num__gte=0).order_by("-stamp"),
        lambda _: Sample.objects.filter(group__name="one"),  # through a join
        lambda _: Sample.objects.filter(Q(data__a=1) | Q(label__contains="%")),  # a literal % in a param
        lambda _: Sample.objects.filter(num=F("num") % 3),  # a literal % in the SQL
        lambda _: UuidKeyed.objects.all(),
        lambda _: CharKeyed.objects.all(),
        lambda _: CharKeyedProfile.objects.all(),  # a one-to-one key
        lambda _: Record.objects.all(),  # many-to-many, a file, bytes
    ],
    ids=["all", "ordered", "joined", "param-percent", "sql-percent", "uuid", "char", "one-to-one", "m2m"],
)
@pytest.mark.usefixtures("world")
def test_a_read_from_the_compiled_sql_is_what_django_reads(make: Callable[[Any], Any]) -> None:
    keyed = [UuidKeyed.objects.create(name=f"u{n}") for n in range(3)]
    for n in range(4):
        owner = CharKeyed.objects.create(key=f"k{n}", name=f"n{n}")
        if n % 2:
            CharKeyedProfile.objects.create(owner=owner, bio=f"b{n}")
        record = Record.objects.create(title=f"r{n}", blob=b"\x00\x01", amount="1.50", file=f"f{n}.txt")
        record.tags.add(*keyed[:n])
    observer = observed(querying(make), None)
    (query,) = observer.queries
    assert query.compiled is not None and query.compiled.plan is not None
    (read,) = observer.read()
    assert read and read == read_by_django(observer)[0]


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda _: Book.objects.values("title"), "values()"),
        (lambda _: Book.objects.only("title"), "only()"),
        (lambda _: Book.objects.defer("body"), "defer()"),
        (lambda _: Book.objects.annotate(twice=F("pages") * 2), "an annotation selected"),
        (lambda _: Book.objects.select_related("author"), "select_related()"),
        (lambda _: Book.objects.order_by("pk")[:2], "a slice"),
        (lambda _: Book.objects.filter(pages=1).union(Book.objects.filter(pages=2)), "a union"),
        (lambda _: Book.objects.extra(select={"one": "1"}), "extra()"),
        (lambda _: DatedNote.objects.all(), "an inherited table's columns"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_querysets_that_do_not_select_the_published_fields_as_they_stand_are_read_by_django(
    make: Callable[[Any], Any], why: str
) -> None:
    author = Author.objects.create(name="a", email="a@x")
    for pages in (1, 2, 3):
        Book.objects.create(title=f"t{pages}", author=author, pages=pages)
    DatedNote.objects.create(text="d")
    compiled = compile_queryset(make(None))
    assert compiled.plan is None, why
    assert compiled.sql != EMPTY


def test_a_queryset_of_no_rows_whatever_else_compiles_to_empty() -> None:
    for queryset in (Note.objects.none(), Note.objects.filter(pk__in=[])):
        assert compile_queryset(queryset) == compiled_module.CompiledQuery("testapp.Note", EMPTY, (), None)


def test_what_is_not_a_list_of_querysets_compiles_to_nothing() -> None:
    assert compile_queries(Note.objects.all()) is None
    assert compile_queries([Note.objects.all(), "not a queryset"]) is None


def test_querysets_of_one_shape_share_one_plan_and_others_do_not() -> None:
    one, two = (compile_queryset(Book.objects.filter(author=n)) for n in (1, 2))
    assert one.plan is not None and one.plan is two.plan and one.params != two.params
    other = compile_queryset(Book.objects.filter(author=1, pages=2))
    assert other.plan is not None and other.plan is not one.plan


SHAPES = [
    *AGREEMENT,
    *DATABASE_DECIDES,
    # A value that changes the joins: None promotes the join to a LEFT OUTER one.
    case("join to None", lambda w: Sample.objects.filter(group__name=None)),
    case("join or None", lambda w: Sample.objects.filter(Q(group__name="one") | Q(group__name=None))),
    case("joined ordering", lambda w: Sample.objects.filter(num=0).order_by("group__name")),
    case("joined ordering or None", lambda w: Sample.objects.filter(num=None).order_by("-group__name", "pk")),
    case("reversed ordering", lambda w: Sample.objects.filter(num=0).order_by("label").reverse()),
    case("unordered", lambda w: Sample.objects.filter(num=0).order_by()),
    case("reverse join twice", lambda w: Group.objects.filter(samples__num=0, samples__flag=True)),
    case("reverse join chained", lambda w: Group.objects.filter(samples__num=0).filter(samples__flag=True)),
    case("num in three", lambda w: Sample.objects.filter(num__in=[0, 1, 2])),
    case("evaluated first", lambda w: _evaluated(Sample.objects.filter(num=1).order_by("group__name"))),
]


def _evaluated(queryset: QuerySet[Any]) -> QuerySet[Any]:
    list(queryset)  # (compiling it once leaves the ordering's join in its query)
    return queryset.filter(flag=True)


def as_django_compiles_it(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except compiled_module.EmptyResultSet:
        return EMPTY, ()
    return sql, tuple(params)


def plain(params: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(getattr(param, "adapted", param) for param in params)  # (psycopg2's Binary)


def plain_compiled(compiled: tuple[str, tuple[Any, ...]]) -> tuple[str, tuple[Any, ...]]:
    return compiled[0], plain(compiled[1])


@pytest.mark.usefixtures("world")
def test_a_queryset_of_a_known_shape_compiles_to_exactly_what_django_compiles_it_to(world: World) -> None:
    """Only its WHERE clause is compiled; the rest of its SQL is its shape's. Every case of
    the matching tests, with the shapes of all of them learnt first, so that a shape
    taken for another's would show."""
    specs: list[Case] = [param.values[0] for param in SHAPES]
    compiled_module._shapes.clear()
    for spec in specs:
        compile_queryset(spec.build(world))
    assert len(compiled_module._shapes) >= 10  # (most filter one table: one shape)
    differing, by_shape = [], 0
    for spec in specs:
        queryset = spec.build(world)
        key = compiled_module._shape_key(queryset.query, queryset.db)
        by_shape += key in compiled_module._shapes
        got = compile_queryset(queryset)
        if (got.sql, plain(got.params)) != plain_compiled(as_django_compiles_it(spec.build(world))):
            differing.append((spec.id, got.sql, as_django_compiles_it(spec.build(world))[0]))
    assert not differing, differing
    assert by_shape > 100


def test_a_second_queryset_of_a_shape_compiles_only_its_where_clause(monkeypatch: pytest.MonkeyPatch) -> None:
    first = compile_queryset(Book.objects.filter(author__email="a@x").order_by("author__name"))
    compiles: list[Any] = []
    as_sql = compiled_module.connections["default"].ops.compiler("SQLCompiler").as_sql
    monkeypatch.setattr(
        compiled_module.connections["default"].ops.compiler("SQLCompiler"),
        "as_sql",
        lambda self, *args, **kwargs: compiles.append(self) or as_sql(self, *args, **kwargs),
    )
    second = compile_queryset(Book.objects.filter(author__email="b@x").order_by("author__name"))
    assert compiles == [] and second.params == ("b@x",) and second.sql == first.sql
    assert second.plan is first.plan
    none = compile_queryset(Book.objects.filter(author__email=None).order_by("author__name"))
    assert compiles == [] and none.params == () and '"testapp_author"."email" IS NULL' in none.sql
    compile_queryset(Book.objects.annotate(n=F("pages")).filter(author__email="c@x"))  # no shape
    compile_queryset(Book.objects.filter(author__email="d@x"))  # another: its ordering is not there
    assert len(compiles) == 2


def ordered_books(author: Any) -> QuerySet[Any]:
    return Book.objects.filter(author=author).order_by("-pages")


def tagged_books(tag: Any) -> QuerySet[Any]:
    return Book.objects.filter(tags__name=tag)  # a book with the tag twice over is one row


def library() -> list[Author]:
    authors = [Author.objects.create(name=f"a{n}", email=f"a{n}@x") for n in range(4)]
    tags = [Tag.objects.create(name=f"tag{n}") for n in range(3)]
    for n in range(12):
        book = Book.objects.create(title=f"t{n}", author=authors[n % 3], pages=n)
        book.tags.add(*tags[: n % 4])
    return authors


@pytest.mark.parametrize(("make", "param"), [(ordered_books, "author"), (tagged_books, "tag")])
def test_observers_read_together_get_what_each_reads_alone(
    make: Callable[[Any], QuerySet[Any]], param: str
) -> None:
    authors = library()
    params: list[Any] = authors if param == "author" else ["tag0", "tag1", "tag2", "none"]
    publication = querying(make)
    observers = [observed(publication, value.pk if param == "author" else value) for value in params]
    together = read_together(observers)
    assert together == [observer.read() for observer in observers]
    assert together == [read_by_django(observer) for observer in observers]
    assert sum(bool(rows) for (rows,) in together) == 3  # (one author, one tag hold none)


def test_a_read_reaching_a_chunk_is_read_again_by_django_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    authors = library()
    monkeypatch.setattr(compiled_module, "CHUNK_ROWS", 4)
    observers = [observed(querying(ordered_books), author.pk) for author in authors]
    (first,) = observers[0].queries
    assert first.compiled is not None and compiled_module.read_rows(first.compiled) is None  # 4 books
    assert compiled_module.read_rows(observers[3].queries[0].compiled) == []  # type: ignore[arg-type]
    alone = [read_by_django(observer) for observer in observers]
    assert [observer.read() for observer in observers] == alone
    assert read_together(observers) == alone  # (12 rows together: each is read alone)


def test_observers_of_one_shape_share_what_its_sql_decides_and_others_find_their_own() -> None:
    """Its collection and the joined collections whose changes re-run it are found once
    per read plan: ten thousand observers of one publication shape share them."""
    by_email = querying(lambda email: Book.objects.filter(author__email=email, tags__name="x"))
    first, second = (observed(by_email, email).queries[0] for email in ("a@x", "b@x"))
    assert first.related == {"testapp.author", "testapp.tag"} and first.related is second.related
    (plain,) = observed(querying(ordered_books), 1).queries
    assert plain.related == frozenset() and plain.name == first.name == "testapp.book"
