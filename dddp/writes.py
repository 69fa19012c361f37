"""Client-side writes: a Collection's methods `/<name>/insert`, `/update` and `/remove` (M-1 to M-4).

A Meteor client may write a collection directly (`Books.insert({...})`,
`Books.update(id, {$set: {...}})`, `Books.remove(id)`): its stub changes the
local copy at once and calls these methods, and the change stays only if the
server makes it too. A Collection opts in, per operation::

    class Book(Collection):
        model = models.Book
        client_writes = ("insert", "update", "remove")

Each operation named is registered under Meteor's method name and its Meteor 3
alias (`/testapp.book/insert` and `/testapp.book/insertAsync`). Others stay
unregistered: the client gets 404, and its stub's change is undone.

Meteor's allow/deny (M-3), onto Django:

- Update and remove select one document by id (M-2); an update uses Meteor's
  allowed operators (`dddp.modifiers`), never a replacement nor an upsert.
  Refusals are 403s with Meteor's own texts.
- Any allow rule lets the write through, any deny rule vetoes it. The Django
  model permission (add, change or delete, as `user.has_perm` says, also per
  object) is one allow rule, unless `allow_by_model_permission = False`. The
  Collection's class methods `allow_insert(user, doc)`,
  `allow_update(user, instance, field_names, modifier)` and
  `allow_remove(user, instance)`, when it has them, are more; `deny_insert`,
  `deny_update` and `deny_remove`, with the same arguments, veto. `user` is
  the caller's Django user, an `AnonymousUser` when not logged in (or no
  longer active); `doc` is the
  document as the client sent it (with `_id` only if the client chose one),
  `instance` the row as it is before the write. All is decided before anything
  is written: a refused write writes nothing.
- Documents are written as `dddp.documents` publishes them: fields by name, a
  foreign key as the related document's id, a many-to-many field as a list of
  ids. Clients write the editable fields the Collection publishes, or those
  its `writable_fields` names (a BinaryField, not editable by default, only
  so). Values go through the
  model's field validation (`full_clean`): a bad value is a 400 whose reason
  names the field; a database constraint (a duplicate `_id`, a unique column)
  is a 409.
- An insert without `_id` into a model with a `MeteorIdField` primary key gets
  the id the client's stub drew (section 5); other keys are the database's
  (or their field default's). The result is the new document's id.

The writes go through the ORM, so subscribers get them by the usual signals,
and the method's `updated` follows their data messages (D-82).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import DataError, IntegrityError, connections, models, router, transaction
from django.db.models.fields import AutoFieldMixin

from dddp import modifiers
from dddp.documents import concrete_fields
from dddp.fields import MeteorIdField
from dddp.log_throttle import first_line
from dddp.methods import Method, MethodInvocation
from dddp.modifiers import invalid, json_kind
from dddp.protocol.errors import MeteorError, match_failed
from dddp.visibility import visible_rows

if TYPE_CHECKING:
    from dddp.api import Collection

OPERATIONS = ("insert", "update", "remove")

#: The model permission that is an allow rule of each operation.
PERMISSION_ACTIONS = {"insert": "add", "update": "change", "remove": "delete"}

ACCESS_DENIED = "Access denied"
UPSERT_REFUSED = "Access denied. Upserts not allowed in a restricted collection."


def not_by_id(method_name: str) -> MeteorError:
    """403 for a selector that is not one id (M-2); the text names the method, as Meteor's does."""
    return MeteorError(403, f"Not permitted. Untrusted code may only {method_name} documents by ID.")


def no_allow_rules(method_name: str) -> MeteorError:
    """403 for an operation that nothing could allow (M-3)."""
    return MeteorError(
        403, f"Access denied. No allow validators set on restricted collection for method '{method_name}'."
    )


# --- declaring -----------------------------------------------------------------------


def write_methods(collection: type[Collection]) -> list[Method]:
    """The methods of the operations `collection.client_writes` names, each under its two names."""
    check_declaration(collection)
    return [
        _write_method(collection, operation + suffix)
        for operation in OPERATIONS
        if operation in collection.client_writes
        for suffix in ("", "Async")
    ]


def check_declaration(collection: type[Collection]) -> None:
    """Raise ImproperlyConfigured for client-write attributes that cannot work."""
    name = collection.__name__
    writes = collection.client_writes
    if isinstance(writes, str) or not isinstance(writes, (list, tuple, set, frozenset)):
        raise ImproperlyConfigured(f"{name}.client_writes must be a list such as {list(OPERATIONS)!r}")
    unknown = [operation for operation in writes if operation not in OPERATIONS]
    if unknown:
        raise ImproperlyConfigured(
            f"{name}.client_writes names {unknown[0]!r}; the operations are {', '.join(OPERATIONS)}"
        )
    names = collection.writable_fields
    if names is None:
        if writes and _shape_is_its_own(collection):
            # Which fields its own shape publishes, only its code knows: guessing could open hidden ones.
            raise ImproperlyConfigured(
                f"{name} overrides shape() and takes client writes: name the fields clients may write "
                "in writable_fields"
            )
        return
    if isinstance(names, str) or not isinstance(names, (list, tuple, set, frozenset)):
        raise ImproperlyConfigured(f"{name}.writable_fields must be a list of field names")
    choices = _candidates(collection.model)
    unknown = [field_name for field_name in names if field_name not in choices]
    if unknown:
        raise ImproperlyConfigured(
            f"{name}.writable_fields names {unknown[0]!r}, which clients cannot write; "
            f"the fields of {collection.model._meta.label} they can are {', '.join(choices)}"
        )


def _shape_is_its_own(collection: type[Collection]) -> bool:
    from dddp.api import Collection

    return collection.shape.__func__ is not Collection.shape.__func__  # type: ignore[attr-defined]


def _write_method(collection: type[Collection], method_name: str) -> Method:
    operation = method_name.removesuffix("Async")
    write: Callable[..., Any]
    if operation == "insert":

        def write(this: MethodInvocation, doc: Any) -> str:
            return insert(collection, this, doc, method_name)

    elif operation == "update":

        def write(this: MethodInvocation, selector: Any, modifier: Any, options: Any = None) -> int:
            return update(collection, this, selector, modifier, options, method_name)

    else:

        def write(this: MethodInvocation, selector: Any) -> int:
            return remove(collection, this, selector, method_name)

    # Registering the same Collection again replaces its methods; another's clash (dddp.api).
    write.__module__ = collection.__module__
    write.__qualname__ = f"{collection.__qualname__}.{method_name}"
    name = f"/{collection.collection_name()}/{method_name}"
    write.__doc__ = f"Meteor's {name}: a client-side {operation} (dddp.writes)."
    return Method(write, name=name)


def writable_fields(collection: type[Collection]) -> dict[str, models.Field[Any, Any]]:
    """Document field name -> model field, for the fields clients may write."""
    candidates = _candidates(collection.model)
    names = collection.writable_fields
    if names is None:  # the editable ones the Collection publishes
        editable = [name for name, field in candidates.items() if field.editable]
        names = list(collection.shape(dict.fromkeys(editable)))
    return {name: field for name, field in candidates.items() if name in names}


def _candidates(model: type[models.Model]) -> dict[str, models.Field[Any, Any]]:
    """The fields a Collection may let clients write: its document's (not the id), not computed."""
    fields = [*concrete_fields(model), *model._meta.many_to_many]
    # Django 5's GeneratedField: the database computes it.
    return {field.name: field for field in fields if not getattr(field, "generated", False)}


# --- the operations ------------------------------------------------------------------


def insert(
    collection: type[Collection], this: MethodInvocation, doc: Any, method_name: str = "insert"
) -> str:
    """M-1: make the row of `doc`; return its id, as the client's `_id` holds it."""
    if not isinstance(doc, dict):
        raise match_failed(f"a document is an object, got {json_kind(doc)}")
    _require_allow_rules(collection, "insert", method_name)
    # Drawn first, as Meteor does: an allow rule that inserts too cannot take the client's id.
    generated = _generated_id(collection, this) if "_id" not in doc else None
    fields = _fields_named(collection, [name for name in doc if name != "_id"])
    _check_rules(collection, "insert", _caller(this), (doc,))
    instance = _new_instance(collection.model, doc, generated, fields)
    related = {field: modifiers.related_pks(field, doc[field.name]) for field in fields if field.many_to_many}
    for field, pks in related.items():
        modifiers.check_related_exist(field, pks)
    with _writing(collection.model):
        instance.save(force_insert=True)  # never an UPDATE of a row that has the client's _id
        for field, pks in related.items():
            getattr(instance, field.name).set(pks)
    return client_id(instance.pk)


def update(
    collection: type[Collection],
    this: MethodInvocation,
    selector: Any,
    modifier: Any,
    options: Any = None,
    method_name: str = "update",
) -> int:
    """M-2, M-3: apply `modifier` to the selected row; return 1, or 0 when there is no such row."""
    pk = _selected_pk(collection.model, selector, method_name)
    _require_allow_rules(collection, "update", method_name)
    if not isinstance(modifier, dict):
        raise match_failed(f"a modifier is an object, got {json_kind(modifier)}")
    if options is not None and not isinstance(options, dict):
        raise match_failed(f"update options are an object, got {json_kind(options)}")
    if options and options.get("upsert"):
        raise MeteorError(403, UPSERT_REFUSED)
    changes = modifiers.parse(modifier, writable_fields(collection), collection.collection_name())
    instance = _locked_row(collection, pk, this.user_id)
    if instance is None:
        return 0
    _check_rules(collection, "update", _caller(this), (instance, changes.field_names, modifier), instance)
    with _writing(collection.model):
        changes.apply(instance)
    return 1


def remove(
    collection: type[Collection], this: MethodInvocation, selector: Any, method_name: str = "remove"
) -> int:
    """M-2: delete the selected row; return 1, or 0 when there is no such row."""
    pk = _selected_pk(collection.model, selector, method_name)
    _require_allow_rules(collection, "remove", method_name)
    instance = _locked_row(collection, pk, this.user_id)
    if instance is None:
        return 0
    _check_rules(collection, "remove", _caller(this), (instance,), instance)
    with _writing(collection.model):
        instance.delete()
    return 1


# --- ids -----------------------------------------------------------------------------


def client_id(pk: Any) -> str:
    """The `_id` a client holds for a primary key: its string, not the wire's escaped form.

    On the wire a document's id is `document_id(pk)`, which a client parses back
    (Meteor's `MongoID.idParse`) into this; a client's selectors and `_id`s are
    in this form, while foreign keys and many-to-many lists hold wire ids.
    """
    return str(pk)


def _pk_field(model: type[models.Model]) -> models.Field[Any, Any]:
    field = model._meta.pk
    while field.is_relation:  # a child model's (or a one-to-one) key: the values of the field it points to
        field = field.target_field  # type: ignore[attr-defined]
    return field


def _selected_pk(model: type[models.Model], selector: Any, method_name: str) -> Any:
    """The primary key a selector of one id names, or None when no row can have it (M-2)."""
    if isinstance(selector, dict) and list(selector) == ["_id"]:
        selector = selector["_id"]
    if isinstance(selector, bool) or not isinstance(selector, (str, int, float)):
        raise not_by_id(method_name)
    if not isinstance(selector, str):
        return None  # a number is an id to Meteor, but every document's id here is a string
    try:
        return _pk_field(model).to_python(selector)
    except ValidationError:
        return None


def _generated_id(collection: type[Collection], this: MethodInvocation) -> str | None:
    """The next id the client's stub drew for this collection, for a MeteorIdField key (R-2)."""
    if not isinstance(collection.model._meta.pk, MeteorIdField):
        return None
    return this.random_stream("/collection/" + collection.collection_name()).id()


def _explicit_pk(model: type[models.Model], raw: Any) -> Any:
    """The primary key of the `_id` a client gave its new document."""
    if not isinstance(raw, str):
        raise modifiers.bad_field("_id", f"an id is a string, got {json_kind(raw)}")
    if not raw:
        raise modifiers.bad_field("_id", "an id cannot be empty.")
    if isinstance(model._meta.pk, AutoFieldMixin):  # an id of ours would leave the sequence behind
        raise modifiers.bad_field("_id", f"the database gives {model._meta.label_lower} ids: leave _id out.")
    return raw


def _locked_row(collection: type[Collection], pk: Any, user_id: Any) -> models.Model | None:
    """The row, locked until the method's transaction ends (a $inc is read, then written);
    None for a row the user may not see (`user_rel`): as for a row that is not there."""
    model = collection.model
    if pk is None:
        return None
    try:
        with transaction.atomic(using=router.db_for_write(model)):
            rows = visible_rows(collection, model._default_manager.filter(pk=pk), user_id)
            return rows.select_for_update().first()
    except DataError:  # a number past the column's range (Django 4.2 sends it): no row has it
        return None


# --- documents onto rows -------------------------------------------------------------


def _fields_named(collection: type[Collection], names: Sequence[str]) -> list[models.Field[Any, Any]]:
    writable = writable_fields(collection)
    for name in names:
        if name not in writable:
            raise modifiers.unknown_field(name, collection.collection_name())
    return [writable[name] for name in names]


def _new_instance(
    model: type[models.Model],
    doc: dict[str, Any],
    generated: str | None,
    fields: list[models.Field[Any, Any]],
) -> models.Model:
    """The unsaved row of `doc`, validated as the model validates its fields."""
    pk = generated if "_id" not in doc else _explicit_pk(model, doc["_id"])
    instance = model(**({model._meta.pk.attname: pk} if pk is not None else {}))
    for field in fields:
        if not field.many_to_many:
            modifiers.assign(instance, field, doc[field.name])
    try:
        # Unique columns and constraints are the database's to check: a conflict is a 409.
        instance.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise invalid(exc, id_field=model._meta.pk.name) from None
    return instance


@contextlib.contextmanager
def _writing(model: type[models.Model]) -> Iterator[None]:
    """Run writes in a savepoint whose constraint errors are 409s and validation errors 400s."""
    using = router.db_for_write(model)
    try:
        with transaction.atomic(using=using):
            # Foreign keys are checked at COMMIT, after the method: now, a violation is this write's 409.
            with connections[using].cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            yield
    except IntegrityError as exc:
        raise MeteorError(409, first_line(exc)) from None
    except ValidationError as exc:
        raise invalid(exc) from None


# --- who may write -------------------------------------------------------------------


def _caller(this: MethodInvocation) -> Any:
    """The caller's Django user; AnonymousUser when not logged in, so that rules need no None check.

    A user deactivated since logging in is anonymous too, as Django's own
    authentication makes them on their next request.
    """
    user = this.user
    if user is None or not getattr(user, "is_active", True):
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return user


def _require_allow_rules(collection: type[Collection], operation: str, method_name: str) -> None:
    if not collection.allow_by_model_permission and _rule(collection, "allow", operation) is None:
        raise no_allow_rules(method_name)


def _check_rules(
    collection: type[Collection],
    operation: str,
    user: Any,
    args: tuple[Any, ...],
    instance: models.Model | None = None,
) -> None:
    """403 "Access denied" unless an allow rule passes and no deny rule objects (M-3)."""
    deny = _rule(collection, "deny", operation)
    if deny is not None and deny(user, *args):
        raise MeteorError(403, ACCESS_DENIED)
    if collection.allow_by_model_permission and _has_model_permission(
        user, collection.model, operation, instance
    ):
        return
    allow = _rule(collection, "allow", operation)
    if allow is None or not allow(user, *args):
        raise MeteorError(403, ACCESS_DENIED)


def _rule(collection: type[Collection], kind: str, operation: str) -> Callable[..., Any] | None:
    rule: Callable[..., Any] | None = getattr(collection, f"{kind}_{operation}", None)
    return rule


def _has_model_permission(user: Any, model: type[models.Model], operation: str, instance: Any) -> bool:
    from django.contrib.auth import get_permission_codename

    meta = model._meta
    permission = f"{meta.app_label}.{get_permission_codename(PERMISSION_ACTIONS[operation], meta)}"
    # Django's ModelBackend grants per model only; a per-object backend (django-guardian) per row.
    return bool(user.has_perm(permission) or (instance is not None and user.has_perm(permission, instance)))
