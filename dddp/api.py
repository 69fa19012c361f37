"""The public API: declare collections, publications and methods in your app's ddp.py.

For example::

    from dddp.api import API, Collection, Publication

    class Book(Collection):
        model = models.Book

    class AllBooks(Publication):
        queries = [models.Book.objects.all()]

    API.register([Book, AllBooks])
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from types import FunctionType
from typing import Any, ClassVar, NamedTuple

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from dddp import signals, writes
from dddp.methods import ConnectionInfo, Method, MethodInvocation, method
from dddp.protocol.errors import MeteorError, match_failed
from dddp.publication_checks import declaration_problems

__all__ = [
    "API",
    "Collection",
    "ConnectionInfo",
    "MeteorError",
    "Method",
    "MethodInvocation",
    "Publication",
    "PublicationError",
    "Registry",
    "method",
]


class Collection:
    """A Django model published as the DDP collection `app_label.model_name`.

    Documents carry every concrete field (see `dddp.documents` for names and
    values); `fields` keeps only those named, `exclude` drops those named, and
    overriding `shape` can rename, add or compute fields. Filters of
    publications still see every column, published or not.

    `client_writes` lets Meteor clients write the collection themselves
    (`Books.insert/update/remove`), as allowed by the model's Django
    permissions and the Collection's optional rules `allow_insert(user, doc)`,
    `allow_update(user, instance, field_names, modifier)`,
    `allow_remove(user, instance)` and their `deny_` vetoes (see `dddp.writes`).
    """

    model: ClassVar[type[models.Model]]
    #: The DDP collection name; by default the model's `app_label.model_name`.
    name: ClassVar[str | None] = None
    #: Only these fields are published (default: all).
    fields: ClassVar[Sequence[str] | None] = None
    #: These fields are never published.
    exclude: ClassVar[Sequence[str]] = ()
    #: The writes clients may make: any of "insert", "update", "remove" (default: none).
    client_writes: ClassVar[Sequence[str]] = ()
    #: The fields clients may write (default: the published ones that are editable).
    writable_fields: ClassVar[Sequence[str] | None] = None
    #: Whether the model's Django permission (add, change, delete) lets a user write.
    allow_by_model_permission: ClassVar[bool] = True
    #: Who may see a row: relations to the user model (`"owner"`, `"author__owner"`); a
    #: user sees the rows any of them leads to, in every publication (`dddp.visibility`).
    user_rel: ClassVar[str | Sequence[str] | None] = None

    @classmethod
    def collection_name(cls) -> str:
        return cls.name or cls.model._meta.label_lower

    @classmethod
    def shape(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """The published document from all of a row's fields; must not touch the database."""
        if cls.fields is not None:
            fields = {name: value for name, value in fields.items() if name in cls.fields}
        if cls.exclude:
            fields = {name: value for name, value in fields.items() if name not in cls.exclude}
        return fields


class PublicationError(ImproperlyConfigured):
    """A mistake in a publication's code (how it is declared, what get_queries returns).

    Never the client's fault: the subscription gets 500 and the log says what is wrong.
    """


class Publication:
    """A named set of querysets a client subscribes to.

    Give `queries` (a list of querysets), or override `get_queries(self, *params)`
    to build them from the subscription's parameters and `self.user_id`.
    """

    #: The name clients subscribe to; by default the class name.
    name: ClassVar[str | None] = None
    queries: ClassVar[Sequence[models.QuerySet[Any]] | None] = None
    #: A universal publication (Meteor's `Meteor.publish(null, ...)`): every session
    #: has it from its start, without subscribing; it takes no parameters, and
    #: clients cannot subscribe to it by name.
    universal: ClassVar[bool] = False
    #: Subscribing without being logged in gets nosub 401 "Must be logged in"; a logout
    #: ends the subscription so, its documents withdrawn.
    login_required: ClassVar[bool] = False

    def __init__(self, user_id: Any = None):
        self.user_id = user_id

    @classmethod
    def publication_name(cls) -> str:
        return cls.name or cls.__name__

    def get_queries(self) -> list[models.QuerySet[Any]]:
        """The querysets to publish; override with parameters to take the sub's `params`.

        This default serves `queries` and takes no parameters, so a client that
        subscribes to a `queries` publication with parameters gets 400.
        """
        type(self).check_declaration()
        if self.queries is None:  # called as super().get_queries() by a get_queries of its own
            raise PublicationError(f"{type(self).__name__} has no `queries` for Publication.get_queries()")
        return [query.all() for query in self.queries]  # .all(): a fresh, uncached copy

    @classmethod
    def check_declaration(cls) -> None:
        """Raise PublicationError for a mistake in how the class gives its querysets.

        The mistakes the system checks report at start-up (dddp.E005-E007), for
        when they were silenced or not run.
        """
        declared = _declaration(cls)
        if declared.error is not None:
            raise PublicationError(declared.error)

    @classmethod
    def check_params(cls, params: Sequence[Any]) -> None:
        """Raise 400 "Match failed" when `params` do not fit `get_queries` (D-43).

        A mistake in the class itself is PublicationError, not the client's 400.
        """
        declared = _declaration(cls)
        if declared.error is not None:
            raise PublicationError(declared.error)
        if declared.signature is None:  # a callable whose signature Python cannot tell: let the call decide
            return
        fewest, most = declared.positional
        if fewest <= len(params) <= most:
            return  # (what `bind` would accept: it runs at every subscription)
        try:
            declared.signature.bind(*([None] if declared.bound else []), *params)
        except TypeError as exc:
            raise match_failed(str(exc)) from None


class _Declared(NamedTuple):
    """What `_declaration` found of a publication class."""

    error: str | None  # its first declaration error
    signature: inspect.Signature | None  # its get_queries' (None if Python cannot tell it)
    bound: bool  # whether get_queries is called bound to the instance (`self` is not a param)
    #: How many params `signature.bind` surely accepts, (fewest, most); (1, 0) when it is
    #: not that simple (keyword-only params without defaults): then `bind` says.
    positional: tuple[float, float]


#: Each publication -> its get_queries and queries when `_declaration` looked, and what it found.
_declarations: dict[Any, tuple[Any, Any, _Declared]] = {}


def _declaration(publication: type[Publication]) -> _Declared:
    """What a publication declares, found once per class, not at every subscription
    (again if the class was changed since, as a test may)."""
    get_queries, queries = _class_attribute(publication, "get_queries"), publication.queries
    seen = _declarations.get(publication)
    if seen is not None and seen[0] is get_queries and seen[1] is queries:
        return seen[2]
    errors = [problem for problem in declaration_problems(publication) if problem.is_error]
    signature: inspect.Signature | None = None
    if not errors:
        try:
            signature = inspect.signature(publication.get_queries)
        except ValueError:
            pass
    bound = isinstance(inspect.getattr_static(publication, "get_queries"), FunctionType)
    found = _Declared(str(errors[0]) if errors else None, signature, bound, _positional(signature, bound))
    _declarations[publication] = (get_queries, queries, found)
    return found


def _class_attribute(cls: type, name: str) -> Any:
    """`cls`'s own attribute `name` as its class body or a base's holds it (what
    `inspect.getattr_static` finds on a class, at a fraction of the cost)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _positional(signature: inspect.Signature | None, bound: bool) -> tuple[float, float]:
    if signature is None:
        return (1, 0)
    params = list(signature.parameters.values())[1 if bound else 0 :]
    fewest = most = 0.0
    for param in params:
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            most += 1
            fewest += param.default is param.empty
        elif param.kind is param.VAR_POSITIONAL:
            most = math.inf
        elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
            return (1, 0)
    return (fewest, most)


class Registry:
    """Every collection, publication and method this project offers over DDP."""

    def __init__(self) -> None:
        self.collections: dict[str, type[Collection]] = {}
        self.collections_by_model: dict[type[models.Model], type[Collection]] = {}
        self.publications: dict[str, type[Publication]] = {}
        self.universal_publications: list[type[Publication]] = []
        #: Functions of a new connection's HTTP headers giving the id of the user it is
        #: already logged in as, or None (dddp.accounts: a Django session's cookie); one
        #: with a `headers` attribute runs only for connections that sent one of them.
        self.connection_authenticators: list[Callable[[dict[str, str]], Any]] = []
        self.methods: dict[str, Method] = {}

    def register(self, items: Iterable[Any]) -> None:
        """Register Collection and Publication subclasses and `@method` functions."""
        if isinstance(items, str) or inspect.isclass(items) or isinstance(items, Method):
            raise TypeError(f"API.register() takes a list of things to register, got {items!r}")
        for item in items:
            if inspect.isclass(item) and issubclass(item, Collection):
                if not (
                    inspect.isclass(getattr(item, "model", None)) and issubclass(item.model, models.Model)
                ):
                    raise ImproperlyConfigured(f"{item.__name__}.model must be a Django model class")
                write_methods = writes.write_methods(item)  # checks client_writes before anything is added
                self._add(self.collections, item.collection_name(), item, "collection")
                self._add(self.collections_by_model, item.model, item, "collection for model")
                signals.connect(item)
                for found in write_methods:
                    self._add(self.methods, found.name, found, "method")
            elif inspect.isclass(item) and issubclass(item, Publication) and item.universal:
                names = {published.publication_name(): published for published in self.universal_publications}
                self._add(names, item.publication_name(), item, "universal publication")
                self.universal_publications = list(names.values())
            elif inspect.isclass(item) and issubclass(item, Publication):
                self._add(self.publications, item.publication_name(), item, "publication")
            elif isinstance(item, Method):
                self._add(self.methods, item.name, item, "method")
            else:
                raise TypeError(
                    "API.register() takes Collection and Publication subclasses and "
                    f"@method functions; got {item!r}"
                )

    def method(
        self,
        func: Any = None,
        *,
        name: str | None = None,
        cpu_heavy: Any = False,
        login_required: bool = False,
    ) -> Any:
        """Decorator: make a function a DDP method and register it at once."""
        if func is None:
            return lambda f: self.method(f, name=name, cpu_heavy=cpu_heavy, login_required=login_required)
        found = method(func, name=name, cpu_heavy=cpu_heavy, login_required=login_required)
        self.register([found])
        return found

    def collection_for_model(self, model: type[models.Model]) -> type[Collection] | None:
        return self.collections_by_model.get(model._meta.concrete_model or model)

    @staticmethod
    def _add(table: dict[Any, Any], name: Any, item: Any, kind: str) -> None:
        existing = table.get(name)
        # The same definition imported again (autoreload, a test re-import) replaces itself.
        same = existing is not None and _qualified_name(existing) == _qualified_name(item)
        if existing is not None and not same:
            raise ImproperlyConfigured(f"two {kind}s are registered as {name!r}: {existing!r} and {item!r}")
        table[name] = item


def _qualified_name(item: Any) -> str:
    target = getattr(item, "func", item)
    return f"{target.__module__}.{target.__qualname__}"


#: The project-wide registry that `ddp.py` modules register into.
API = Registry()
