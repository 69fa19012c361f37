"""Signal receivers: every save and delete of a published model sends its Change.

The Change goes out with `pg_notify` on the writer's own database connection,
so it belongs to the writer's transaction: PostgreSQL delivers it at COMMIT,
and drops it if the transaction or savepoint rolls back. The document is built
from the instance the writer already holds, with no query, unless the
instance may not hold what the database now has (see `_needs_reading_back`).

Deletes and many-to-many changes already run inside a transaction in Django,
but `post_save` comes after the row's own commit when the writer is in
autocommit. So a published model's `save_base` is wrapped (see
`_saves_in_a_transaction`): in autocommit an update carries its NOTIFY in its
own statement, and any other save runs in `atomic()`. Either way the row and
its NOTIFY commit together, and the row lock held until then orders two
writers' notifications as their writes.

Receivers are connected per model (with `sender=`), only for models of
registered collections and their proxies and subclasses: a receiver connected
for all models would also make Django give up its fast path for deleting
other models' rows.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import connections, models, router, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from dddp import changes
from dddp.documents import (
    document_fields,
    document_id,
    fields_from_values,
    instance_document_id,
    many_to_many_ids,
    value_attnames,
)

if TYPE_CHECKING:
    from dddp.api import Collection

_local = threading.local()  # greenlet-local under gevent: one flag per method worker


def reset_changes_sent() -> None:
    _local.changes_sent = 0


def changes_sent() -> int:
    """How many Changes this thread sent since `reset_changes_sent` (for write fences)."""
    return getattr(_local, "changes_sent", 0)


def connect(collection: type[Collection]) -> None:
    """Send this collection's model's saves and deletes as Changes."""
    model = collection.model
    uid = f"dddp:{collection.collection_name()}"

    name = collection.collection_name()
    # Many-to-many lists are not in the row: a save sends the columns only, as a
    # partial change the observer merges with the lists it holds, and each
    # m2m_changed sends the new list (one query, only for that relation).
    has_many_to_many = bool(model._meta.many_to_many)

    def on_save(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        if instance.__dict__.pop("_dddp_notified", False):
            return  # sent with the UPDATE itself (_NotifyWithUpdate)
        fields = _fields_after_save(instance, model, using, kwargs.get("update_fields"))
        if fields is None:  # the row is already gone again (deleted in the same transaction)
            return
        send(
            using,
            changes.Change(
                "save", name, instance_document_id(instance, model), fields, partial=has_many_to_many
            ),
        )

    def on_delete(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        send(using, changes.Change("delete", name, instance_document_id(instance, model)))

    # Django sends a save's signals for the class saved: a proxy of the model, or
    # a subclass (whose save writes the parent's row too), has its own sender.
    # Deleting a subclass's row deletes the parent's with the parent's signals.
    for sender in _models_saving_rows_of(model):
        post_save.connect(on_save, sender=sender, weak=False, dispatch_uid=uid)
    post_delete.connect(on_delete, sender=model, weak=False, dispatch_uid=uid)
    for proxy in _proxies_of(model):
        post_delete.connect(on_delete, sender=proxy, weak=False, dispatch_uid=uid)
    for field in model._meta.many_to_many:
        m2m_changed.connect(
            _many_to_many_receiver(name, model, field),
            sender=field.remote_field.through,
            weak=False,
            dispatch_uid=f"{uid}:{field.name}",
        )
    _saves_in_a_transaction(model, name, has_many_to_many)


def _models_saving_rows_of(model: type[models.Model]) -> list[type[models.Model]]:
    """The model, its proxies, and every installed subclass (multi-table or proxy)."""
    return [model] + [
        other
        for other in apps.get_models()
        if other is not model
        and (other._meta.concrete_model is model or model in other._meta.get_parent_list())
    ]


def _proxies_of(model: type[models.Model]) -> list[type[models.Model]]:
    return [other for other in apps.get_models() if other._meta.proxy and other._meta.concrete_model is model]


def _saves_in_a_transaction(model: type[models.Model], name: str, partial: bool) -> None:
    """Make each autocommit save of the model (and its subclasses) one transaction with its NOTIFY.

    Otherwise `post_save`, and so the NOTIFY, would run after the row's own
    commit: a second transaction, and two writers saving the same row could
    have their NOTIFYs commit in the opposite order to their writes, leaving
    clients on the older value. Within one transaction the row stays locked
    until the NOTIFY commits with it.

    The usual save, an UPDATE of a row the instance fully holds, gets its
    NOTIFY in the same statement (`_NotifyWithUpdate`): one round trip, as a
    trigger would, and Django's own transaction handling is untouched. Other
    saves (inserts, `update_fields`, expressions...) run in `atomic()`. In a
    transaction already, a save is left as it is.
    """
    save_base = model.save_base
    if getattr(save_base, "dddp_original", None) is not None:
        return  # wrapped already (registered again)

    @functools.wraps(save_base)
    def save_base_in_a_transaction(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        # Model.save passes its arguments by keyword; save_base's signature is
        # (raw, force_insert, force_update, using, update_fields).
        named = dict(
            zip(("raw", "force_insert", "force_update", "using", "update_fields"), args, strict=False)
        )
        named.update(kwargs)
        using = named.get("using") or router.db_for_write(type(self), instance=self)
        connection = connections[using]
        if connection.in_atomic_block:
            return save_base(self, *args, **kwargs)
        if _can_notify_with_the_update(self, model, connection, named):
            with connection.execute_wrapper(_NotifyWithUpdate(self, model, name, partial, connection)):
                return save_base(self, *args, **kwargs)
        with transaction.atomic(using=using, savepoint=False):
            return save_base(self, *args, **kwargs)

    save_base_in_a_transaction.dddp_original = save_base  # type: ignore[attr-defined]
    save_base_in_a_transaction.dddp_own = "save_base" in vars(model)  # type: ignore[attr-defined]
    model.save_base = save_base_in_a_transaction  # type: ignore[method-assign]


def _can_notify_with_the_update(
    instance: models.Model, model: type[models.Model], connection: Any, named: dict[str, Any]
) -> bool:
    """An UPDATE of one table whose new row the instance holds."""
    return (
        not instance._state.adding
        and not named.get("raw")
        and not named.get("force_insert")
        and not model._meta.parents
        and type(instance)._meta.concrete_model is model  # the model or a proxy: one table
        and not _needs_reading_back(instance, named.get("update_fields"))
    )


class _NotifyWithUpdate:
    """A Django execute wrapper: the save's UPDATE also sends its Change, in one statement.

    `WITH updated AS (UPDATE ... RETURNING 1) SELECT pg_notify(...) FROM updated`
    notifies exactly when a row was updated, and returns one row per row
    updated: the row count Django reads is the UPDATE's own. When no row was
    updated, Django goes on to INSERT, and `post_save` sends the Change.
    """

    def __init__(
        self, instance: models.Model, model: type[models.Model], name: str, partial: bool, connection: Any
    ):
        self.instance = instance
        self.model = model
        self.name = name
        self.partial = partial
        self.connection = connection
        table = connection.ops.quote_name(model._meta.db_table)
        self.update = f"UPDATE {table} SET "
        self.where = f" WHERE {table}.{connection.ops.quote_name(model._meta.pk.column)} = %s"
        self.done = False

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        instance, model = self.instance, self.model
        if (
            self.done
            or many
            or not params
            or not sql.startswith(self.update)
            or not sql.endswith(self.where)
            or " RETURNING " in sql
        ):
            return execute(sql, params, many, context)
        if params[-1] != model._meta.pk.get_db_prep_value(
            instance.pk, self.connection
        ) or _needs_reading_back(instance, None):
            return execute(sql, params, many, context)  # not the save's own UPDATE
        self.done = True
        # The instance now holds every value the UPDATE writes (auto_now fields included).
        change = changes.Change(
            "save",
            self.name,
            instance_document_id(instance, model),
            document_fields(instance, model),
            self.partial,
        )
        notifies, notify_params = _notify_call(change)
        sql = f"WITH updated AS ({sql} RETURNING 1) SELECT {notifies} FROM updated"
        result = execute(sql, (*params, *notify_params), many, context)
        if context["cursor"].rowcount > 0:
            instance._dddp_notified = True  # type: ignore[attr-defined]  # post_save: already sent
            _local.changes_sent = changes_sent() + 1
        return result


def _saves_as_before(model: type[models.Model]) -> None:
    wrapper = vars(model).get("save_base")
    if getattr(wrapper, "dddp_original", None) is None:
        return
    if wrapper.dddp_own:  # type: ignore[union-attr]
        model.save_base = wrapper.dddp_original  # type: ignore[union-attr,method-assign]
    else:
        delattr(model, "save_base")


def _many_to_many_receiver(name: str, model: type[models.Model], field: Any) -> Any:
    """Sends the new id list of `field` for every row of `model` whose list changed."""

    def on_change(
        sender: Any,
        instance: models.Model,
        action: str,
        reverse: bool,
        pk_set: set[Any] | None,
        using: str,
        **kw: Any,
    ) -> None:
        if reverse and action == "pre_clear":
            # After the clear nothing says which rows held `instance`: note them now.
            through = field.remote_field.through
            target = through._meta.get_field(field.m2m_reverse_field_name()).attname
            source = through._meta.get_field(field.m2m_field_name()).attname
            holders_pks = list(
                through._default_manager.using(using)
                .filter(**{target: instance.pk})
                .values_list(source, flat=True)
            )
            instance._dddp_cleared_holders = holders_pks  # type: ignore[attr-defined]
            return
        if action not in ("post_add", "post_remove", "post_clear"):
            return
        if not reverse:
            pks = [instance.pk]
        elif action == "post_clear":
            pks = getattr(instance, "_dddp_cleared_holders", [])
        else:
            pks = sorted(pk_set or ())
        if not pks:
            return
        for pk, ids in many_to_many_ids(model, field, pks, using).items():
            send(using, changes.Change("save", name, document_id(pk), {field.name: ids}, partial=True))

    return on_change


def disconnect(collection: type[Collection]) -> None:
    model = collection.model
    uid = f"dddp:{collection.collection_name()}"
    for sender in _models_saving_rows_of(model):
        post_save.disconnect(sender=sender, dispatch_uid=uid)
    for sender in [model, *_proxies_of(model)]:
        post_delete.disconnect(sender=sender, dispatch_uid=uid)
    for field in model._meta.many_to_many:
        m2m_changed.disconnect(sender=field.remote_field.through, dispatch_uid=f"{uid}:{field.name}")
    _saves_as_before(model)


def send(using: str, change: changes.Change) -> None:
    """NOTIFY the change on the connection (and so in the transaction) that wrote it."""
    notifies, params = _notify_call(change)
    connection = connections[using]
    # The driver's own cursor: Django's wrapper costs more than this NOTIFY's round trip
    # saves, and the statement is dddp's, not the application's, to debug-log.
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(f"SELECT {notifies}", params)
    _local.changes_sent = changes_sent() + 1


def _notify_call(change: changes.Change) -> tuple[str, list[str]]:
    """`pg_notify(%s, %s), ...` for the change's payloads, and their parameters."""
    channel = changes.channel_for(change.collection)
    payloads = changes.payloads(change)
    params: list[str] = []
    for payload in payloads:
        params += [channel, payload]
    return ", ".join(["pg_notify(%s, %s)"] * len(payloads)), params


def _fields_after_save(
    instance: models.Model, model: type[models.Model], using: str, update_fields: frozenset[str] | None
) -> dict[str, Any] | None:
    """The document's fields as the row now is; `model` is the published model."""
    if not _needs_reading_back(instance, update_fields):
        return document_fields(instance, model)
    row = model._base_manager.using(using).filter(pk=instance.pk).values(*value_attnames(model)).first()
    return None if row is None else fields_from_values(model, row)


def _needs_reading_back(instance: models.Model, update_fields: frozenset[str] | None) -> bool:
    """Whether the instance may not hold the row as the database now has it.

    - `update_fields`: only those columns were written; the others may be stale.
    - deferred fields were never loaded.
    - an F() expression or a database default (Django 5+) was written: the
      attribute still holds the expression, not the value it produced.
    - generated columns (Django 5+): PostgreSQL computes them on every write,
      and Django does not read them back after an update.
    """
    model: Any = type(instance)  # a class is hashable, whatever mypy's stubs say of functools.cache
    if update_fields is not None or instance.get_deferred_fields() or _has_generated_columns(model):
        return True
    return any(
        hasattr(getattr(instance, field.attname, None), "resolve_expression")
        for field in instance._meta.concrete_fields
    )


@functools.cache
def _has_generated_columns(model: type[models.Model]) -> bool:
    return any(getattr(field, "generated", False) for field in model._meta.concrete_fields)


def send_fence(token: str, using: str = "default") -> None:
    """NOTIFY a write fence (after the method's transaction committed)."""
    with connections[using].cursor() as cursor:
        # Its own transaction, and one that writes nothing: PostgreSQL still
        # gives a notifying transaction an id, so its commit would wait for a
        # WAL flush, for a notification that is never read back from the WAL.
        # `synchronous_commit` off for this transaction only skips that wait.
        cursor.execute(
            "SELECT set_config('synchronous_commit', 'off', true), pg_notify(%s, %s)",
            [changes.FENCE_CHANNEL, token],
        )
