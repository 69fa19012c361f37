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
from django.db.models.signals import post_delete, post_save

from dddp import changes
from dddp.documents import document_fields, document_id, fields_from_values, value_attnames

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

    def on_save(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        fields = _fields_after_save(instance, using, kwargs.get("update_fields"))
        if fields is None:  # the row is already gone again (deleted in the same transaction)
            return
        send(using, changes.Change("save", collection.collection_name(), document_id(instance.pk), fields))

    def on_delete(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        send(using, changes.Change("delete", collection.collection_name(), document_id(instance.pk)))

    post_save.connect(on_save, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(on_delete, sender=model, weak=False, dispatch_uid=uid)


def disconnect(collection: type[Collection]) -> None:
    uid = f"dddp:{collection.collection_name()}"
    post_save.disconnect(sender=collection.model, dispatch_uid=uid)
    post_delete.disconnect(sender=collection.model, dispatch_uid=uid)


def send(using: str, change: changes.Change) -> None:
    """NOTIFY the change on the connection (and so in the transaction) that wrote it."""
    channel = changes.channel_for(change.collection)
    payloads = changes.payloads(change)
    sql = "SELECT " + ", ".join(["pg_notify(%s, %s)"] * len(payloads))
    params: list[str] = []
    for payload in payloads:
        params += [channel, payload]
    with connections[using].cursor() as cursor:
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
        cursor.execute("SELECT pg_notify(%s, %s)", [changes.FENCE_CHANNEL, token])
