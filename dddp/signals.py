"""Signal receivers: every save and delete of a published model sends its Change.

The Change goes out with `pg_notify` on the writer's own database connection,
so it belongs to the writer's transaction: PostgreSQL delivers it at COMMIT,
and drops it if the transaction or savepoint rolls back. The document is built
from the instance the writer already holds, with no query, unless the
instance may not hold what the database now has (see `_needs_reading_back`).

Receivers are connected per model (with `sender=`), only for models of
registered collections: a receiver connected for all models would also make
Django give up its fast path for deleting other models' rows.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.db import connections, models
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
        fields = _fields_after_save(instance, using, kwargs.get("update_fields"))
        if fields is None:  # the row is already gone again (deleted in the same transaction)
            return
        send(
            using,
            changes.Change("save", name, instance_document_id(instance), fields, partial=has_many_to_many),
        )

    def on_delete(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        send(using, changes.Change("delete", name, instance_document_id(instance)))

    post_save.connect(on_save, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(on_delete, sender=model, weak=False, dispatch_uid=uid)
    for field in model._meta.many_to_many:
        m2m_changed.connect(
            _many_to_many_receiver(name, model, field),
            sender=field.remote_field.through,
            weak=False,
            dispatch_uid=f"{uid}:{field.name}",
        )


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
    uid = f"dddp:{collection.collection_name()}"
    post_save.disconnect(sender=collection.model, dispatch_uid=uid)
    post_delete.disconnect(sender=collection.model, dispatch_uid=uid)
    for field in collection.model._meta.many_to_many:
        m2m_changed.disconnect(sender=field.remote_field.through, dispatch_uid=f"{uid}:{field.name}")


def send(using: str, change: changes.Change) -> None:
    """NOTIFY the change on the connection (and so in the transaction) that wrote it."""
    channel = changes.channel_for(change.collection)
    payloads = changes.payloads(change)
    notifies = ", ".join(["pg_notify(%s, %s)"] * len(payloads))
    params: list[str] = []
    for payload in payloads:
        params += [channel, payload]
    connection = connections[using]
    if connection.in_atomic_block:
        sql = f"SELECT {notifies}"
    else:
        # Autocommit: the row is already committed, durably, and this NOTIFY is a
        # transaction of its own. PostgreSQL gives a notifying transaction an id,
        # so its commit would wait for a WAL flush like a write's: doubling the
        # writer's cost for nothing, as a notification is never read back from
        # the WAL. `synchronous_commit` off, for this one transaction only, skips
        # that wait; delivery to listeners is unchanged.
        sql = f"SELECT set_config('synchronous_commit', 'off', true), {notifies}"
    # The driver's own cursor: Django's wrapper costs more than this NOTIFY's round trip
    # saves, and the statement is dddp's, not the application's, to debug-log.
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(sql, params)
    _local.changes_sent = changes_sent() + 1


def _fields_after_save(
    instance: models.Model, using: str, update_fields: frozenset[str] | None
) -> dict[str, Any] | None:
    if not _needs_reading_back(instance, update_fields):
        return document_fields(instance)
    model = type(instance)
    row = model._base_manager.using(using).filter(pk=instance.pk).values(*value_attnames(model)).first()
    return None if row is None else fields_from_values(model, row)


def _needs_reading_back(instance: models.Model, update_fields: frozenset[str] | None) -> bool:
    """Whether the instance may not hold the row as the database now has it.

    - `update_fields`: only those columns were written; the others may be stale.
    - deferred fields were never loaded.
    - an F() expression or a database default (Django 5+) was written: the
      attribute still holds the expression, not the value it produced.
    """
    if update_fields is not None or instance.get_deferred_fields():
        return True
    return any(
        hasattr(getattr(instance, field.attname, None), "resolve_expression")
        for field in instance._meta.concrete_fields
    )


def send_fence(token: str, using: str = "default") -> None:
    """NOTIFY a write fence (after the method's transaction committed)."""
    with connections[using].cursor() as cursor:
        # Its own transaction: no WAL flush to wait for (see `send`).
        cursor.execute(
            "SELECT set_config('synchronous_commit', 'off', true), pg_notify(%s, %s)",
            [changes.FENCE_CHANNEL, token],
        )
