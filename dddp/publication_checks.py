"""What can be wrong with a publication, found without the database or the client's params.

The system checks (`dddp.checks`) report these at start-up for every
registered publication and its static `queries`; the server asks the same
questions at subscribe time, where no check could look: `Publication.check_params`
about the declaration, the observer about what `get_queries` returned, and
the answers are in the same words.

Ids: dddp.E005-E010 and dddp.W002-W004 (see README.rst, "System checks").
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FunctionType
from typing import TYPE_CHECKING, Any, NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connections, models

from dddp.documents import value_attnames
from dddp.matching import joined_aliases

if TYPE_CHECKING:
    from dddp.api import Collection, Publication, Registry


class Problem(NamedTuple):
    """One mistake: a check id, what is wrong, and what to write instead."""

    id: str
    msg: str
    hint: str

    def __str__(self) -> str:
        return f"{self.msg} {self.hint}"

    @property
    def is_error(self) -> bool:
        return self.id.startswith("dddp.E")


# --- a publication's declaration (E005-E007, W003) --------------------------------------


def publication_problems(registry: Registry, publication: type[Publication]) -> list[Problem]:
    """The declaration's problems, then those of each static queryset (queries=...)."""
    problems = declaration_problems(publication)
    if any(p.is_error for p in problems) or _own_get_queries(publication):
        return problems
    for index, queryset in enumerate(publication.queries or ()):
        where = f"{publication.__name__}.queries[{index}]"
        found = queryset_problems(registry, where, queryset) or [
            problem for problem in [compile_problem(where, queryset)] if problem is not None
        ]
        if found:
            problems += found
            continue
        problems += [
            Problem(
                "dddp.W002",
                f"{where} filters through table {table}, which no Collection publishes.",
                "Its changes reach subscribers only when the publication's own rows change"
                + _unpublished_hint(registry, table),
            )
            for table in unpublished_tables(registry, queryset)
        ]
    return problems


def declaration_problems(publication: type[Publication]) -> list[Problem]:
    """What is wrong with how the class gives its querysets (no registry needed)."""
    name = publication.__name__
    queries = getattr(publication, "queries", None)
    if _own_get_queries(publication):
        problems = _get_queries_problems(publication)
        if queries is not None:
            problems.append(
                Problem(
                    "dddp.W003",
                    f"{name} has both `queries` and its own `get_queries()`: only get_queries() is used.",
                    "Remove `queries` (get_queries() sees it only by calling super().get_queries()), "
                    "or remove get_queries() if the querysets take no params.",
                )
            )
        return problems
    if queries is None:
        return [
            Problem(
                "dddp.E005",
                f"{name} has neither `queries` nor a `get_queries()` method.",
                _near_miss_hint(publication),
            )
        ]
    if not isinstance(queries, (list, tuple)):
        return [
            Problem(
                "dddp.E006",
                f"{name}.queries is {describe(queries)}, not a list of querysets.",
                _not_a_queryset_hint(queries, wrap="queries = [...]"),
            )
        ]
    return [
        Problem(
            "dddp.E006",
            f"{name}.queries[{index}] is {describe(item)}, not a queryset.",
            _not_a_queryset_hint(item),
        )
        for index, item in enumerate(queries)
        if not isinstance(item, models.QuerySet)
    ]


def _own_get_queries(publication: type[Publication]) -> bool:
    from dddp.api import Publication

    return inspect.getattr_static(publication, "get_queries", None) is not Publication.__dict__["get_queries"]


def _get_queries_problems(publication: type[Publication]) -> list[Problem]:
    name = publication.__name__
    raw = inspect.getattr_static(publication, "get_queries")
    takes = "Write `def get_queries(self, *params):` returning a list of querysets"
    if not callable(raw) and not isinstance(raw, (staticmethod, classmethod)):
        hint = "Did you mean `queries = [...]`?" if isinstance(raw, (list, tuple)) else takes + "."
        return [Problem("dddp.E007", f"{name}.get_queries is {describe(raw)}, not a method.", hint)]
    func = getattr(raw, "__func__", raw)
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        return [
            Problem(
                "dddp.E007",
                f"{name}.get_queries() is async: dddp calls it in a plain function.",
                takes + " (a plain `def`).",
            )
        ]
    if isinstance(raw, FunctionType):
        try:
            parameters = list(inspect.signature(raw).parameters.values())
        except ValueError:
            return []
        first_kinds = (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        )
        if not parameters or parameters[0].kind not in first_kinds:
            return [
                Problem(
                    "dddp.E007",
                    f"{name}.get_queries() takes no `self`: the subscription's params would not fit.",
                    takes + ": the first parameter is the publication (with self.user_id), the client's "
                    "params come after it.",
                )
            ]
    return []


def _near_miss_hint(publication: type[Publication]) -> str:
    from dddp.api import Publication

    defined = {
        attribute: value
        for klass in reversed(publication.__mro__[: publication.__mro__.index(Publication)])
        for attribute, value in vars(klass).items()
        if not attribute.startswith("__") and attribute not in ("queries", "get_queries")
    }
    for attribute, value in defined.items():
        lowered = attribute.lower()
        close = max(
            difflib.SequenceMatcher(None, lowered, right).ratio() for right in ("queries", "get_queries")
        )
        if "quer" in lowered or close >= 0.8:
            meant = (
                "get_queries"
                if callable(value) or isinstance(value, (staticmethod, classmethod))
                else "queries"
            )
            return f"Did you mean `{meant}`? {publication.__name__} defines `{attribute}`."
    return "Set `queries = [...]` to a list of querysets, or define `get_queries(self, *params)`."


def _not_a_queryset_hint(value: Any, wrap: str = "") -> str:
    """What to give instead of `value`; `wrap` is how to write a list of it, when one was wanted."""
    if isinstance(value, models.QuerySet):
        return f"Put it in a list: {wrap}." if wrap else "Give querysets."
    if isinstance(value, models.Manager):
        return f"Give a queryset: {value.model._meta.object_name}.objects.all() (a manager is not one)."
    if inspect.isclass(value) and issubclass(value, models.Model):
        return f"Give a queryset: {value._meta.object_name}.objects.all() (a model class is not one)."
    if isinstance(value, models.query.RawQuerySet):
        return "dddp cannot observe raw SQL: give a queryset, with filter()."
    if wrap:
        return f"Give a list of querysets: {wrap}."
    return "Give a queryset, e.g. Book.objects.all()."


def not_a_list_of_querysets(where: str, value: Any) -> Problem | None:
    """Whether what `get_queries()` returned cannot be a list of querysets (the observer asks)."""
    wrong = (models.QuerySet, models.query.RawQuerySet, models.Manager, str, bytes, dict)
    if isinstance(value, wrong) or not hasattr(value, "__iter__"):
        return Problem(
            "dddp.E006",
            f"{where} returned {describe(value)}, not a list of querysets.",
            _not_a_queryset_hint(value, wrap="return [...]"),
        )
    return None


def not_a_queryset(where: str, value: Any) -> Problem:
    """What `get_queries()` returned instead of a queryset (the observer reports it)."""
    return Problem("dddp.E006", f"{where} is {describe(value)}, not a queryset.", _not_a_queryset_hint(value))


# --- querysets (E008-E010, W002, W004) --------------------------------------------------------


def queryset_problems(registry: Registry, where: str, queryset: models.QuerySet[Any]) -> list[Problem]:
    """Why dddp cannot publish this queryset: no Collection for its model, or unobservable."""
    model = queryset.model
    if registry.collection_for_model(model) is None:
        return [
            Problem(
                "dddp.E008",
                f"{where} is a queryset of {model._meta.label}, which no Collection publishes.",
                f"Register a Collection for it in ddp.py: a Collection subclass with "
                f"model = {model._meta.object_name}, in API.register([...]).",
            )
        ]
    query = queryset.query
    if query.combinator:
        return [
            Problem(
                "dddp.E010",
                f"{where} is a {query.combinator}() of querysets, which dddp cannot observe.",
                "Combine the filters with Q objects instead (filter(Q(...) | Q(...))), or publish each "
                "queryset on its own: a publication may have several.",
            )
        ]
    if query.select_for_update:
        return [
            Problem(
                "dddp.E010",
                f"{where} uses select_for_update(), which dddp cannot observe.",
                "Remove select_for_update(): publications read outside any transaction.",
            )
        ]
    return []


def unpublished_tables(registry: Registry, queryset: models.QuerySet[Any]) -> list[str]:
    """The tables the queryset's filters join whose changes no Collection sends."""
    query = queryset.query
    tables = [query.alias_map[alias].table_name for alias in joined_aliases(query)]
    return [table for table in tables if collection_sending(registry, table) is None]


def collection_sending(registry: Registry, table: str) -> type[Collection] | None:
    """The Collection whose Changes carry the changes of `table`, if any.

    A many-to-many table's changes are sent as changes of the model declaring
    the field (its document holds the list of ids).
    """
    model = model_for_table(table)
    if model is None:
        return None
    owner = model._meta.auto_created
    return registry.collection_for_model(owner if inspect.isclass(owner) else model)


def _unpublished_hint(registry: Registry, table: str) -> str:
    model = model_for_table(table)
    owner = model._meta.auto_created if model is not None else None
    if inspect.isclass(owner):
        model = owner  # a many-to-many table's changes are sent as changes of the declaring model
    if model is None:
        return "."
    return f": register a Collection for {model._meta.label} to have them re-run the queryset."


def model_for_table(table: str) -> type[models.Model] | None:
    """The installed model (auto-created many-to-many models too) whose table is `table`."""
    from django.apps import apps

    for model in apps.get_models(include_auto_created=True):
        if model._meta.db_table == table:
            return model
    return None


def compile_problem(where: str, queryset: models.QuerySet[Any]) -> Problem | None:
    """Whether the queryset's SQL compiles: as dddp reads it (E009), and as written (W004).

    dddp reads `values_list()` of every column, which drops only(), defer()
    and select_related(): a misspelling there breaks no subscription, but is
    one. Compiling needs no database connection, except in a few corners (a
    feature read from the server's version): there the check is skipped rather
    than connect.
    """
    failure = _compile_failure(lambda: queryset.values_list(*value_attnames(queryset.model)))
    if failure is not None:
        return Problem(
            "dddp.E009",
            f"{where} does not compile: {failure}",
            "Fix the queryset: every subscription to the publication would fail with this error.",
        )
    failure = _compile_failure(queryset.all)  # a copy: compiling may touch the query's aliases
    if failure is not None:
        return Problem(
            "dddp.W004",
            f"{where} does not compile as written: {failure}",
            "dddp reads every column and ignores only(), defer() and select_related(), so "
            "subscriptions work, but fix or remove the call.",
        )
    return None


def _compile_failure(make: Callable[[], models.QuerySet[Any]]) -> str | None:
    try:
        queryset = make()
        with _without_connecting(queryset.db):
            queryset.query.get_compiler(using=queryset.db).as_sql()
    except (EmptyResultSet, _WouldConnect):
        return None
    except Exception as exc:  # noqa: BLE001 - whatever Django says, quoted
        return f"{type(exc).__name__}: {exc}"
    return None


class _WouldConnect(Exception):
    pass


@contextmanager
def _without_connecting(alias: str) -> Iterator[None]:
    """Make opening a connection raise `_WouldConnect` (this thread's connection only)."""
    connection = connections[alias]
    if connection.connection is not None:
        yield
        return

    def refuse() -> None:
        raise _WouldConnect(alias)

    connection.ensure_connection = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        del connection.ensure_connection


def describe(value: Any, limit: int = 80) -> str:
    """The value for a message: never a queryset's repr, which would run it."""
    if isinstance(value, (models.QuerySet, models.query.RawQuerySet)):
        model = value.model
        return f"a queryset of {model._meta.label}" if model is not None else "a queryset"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
