"""Which rows of a collection a user may see: a Collection's `user_rel` rule.

`user_rel` names one or more relations from the model to the user model,
following relations as Django's lookups do (`"owner"`, `"author__owner"`,
`"project__members"`). A row is visible to a user when any of them leads to
that user; to a client that is not logged in, none is. Every publication's
querysets of that model are narrowed so (by the server, whatever the
publication's own code), on the first read and on every live change, and a
client-side update or remove of a row the user may not see finds no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from dddp.api import Collection, Registry


def user_relations(collection: type[Collection] | None) -> Sequence[str]:
    rule = getattr(collection, "user_rel", None) if collection is not None else None
    if not rule:
        return ()
    return (rule,) if isinstance(rule, str) else tuple(rule)


def visible_rows(collection: type[Collection] | None, queryset: models.QuerySet[Any], user_id: Any) -> Any:
    """`queryset` narrowed to the rows `user_id` may see under the collection's `user_rel`."""
    relations = user_relations(collection)
    if not relations:
        return queryset
    if user_id is None:
        return queryset.none()
    return queryset.filter(reduce(or_, (Q(**{relation: user_id}) for relation in relations)))


def narrowed(registry: Registry, returned: Any, user_id: Any) -> Any:
    """A publication's querysets, each narrowed by its model's Collection (others as they are)."""
    if not isinstance(returned, list | tuple):
        return returned
    return [
        visible_rows(registry.collection_for_model(queryset.model), queryset, user_id)
        if isinstance(queryset, models.QuerySet)
        else queryset
        for queryset in returned
    ]
