"""Model fields for DDP: `MeteorIdField`, a primary key a Meteor client's stub can predict.

A Meteor client inserting a document (`Books.insert({...})`, or a method whose
stub inserts) shows it at once under an id its stub drew from the method's
`randomSeed`; the server draws the same id from the same seed (docs/ddp-protocol.md,
section 5). With this field as the model's primary key, a row created inside a
DDP method gets that id, so the document the client already shows is the one the
server publishes, and nothing flickers::

    class Book(models.Model):
        id = MeteorIdField(primary_key=True)

- Inside a method (`dddp.methods.current_invocation()`), the n-th new instance of
  the model gets the n-th id of the invocation's stream `/collection/<name>`,
  `<name>` being the model's registered DDP collection name (its
  `app_label.model_name` by default): the n-th insert the client's stub made
  into that collection.
- Elsewhere (the admin, a shell, a client that sent no seed), a random id of
  the same form from the system's random source.

The id is drawn when the instance is made without one (`Book(title=...)`,
`Book.objects.create(...)`), as a field default is: an instance made and never
saved still takes its draw. An id given explicitly is kept.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from dddp.protocol.random import ID_LENGTH, secure


class MeteorIdField(models.CharField):  # type: ignore[type-arg]
    """A 17-character Meteor id (`Random.id()`), drawn from the method's randomSeed."""

    description = "Meteor id (17 characters, drawn from the DDP method's randomSeed)"

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("max_length", ID_LENGTH)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("max_length") == ID_LENGTH:
            del kwargs["max_length"]
        if kwargs.get("editable") is False:
            del kwargs["editable"]
        return name, path, args, kwargs

    def has_default(self) -> bool:
        return True

    def get_default(self) -> Any:
        if super().has_default():
            return super().get_default()
        return new_meteor_id(self.model)


def new_meteor_id(model: type[models.Model]) -> str:
    """The id of a new `model` row: the current method's next draw for its collection."""
    from dddp.methods import current_invocation

    invocation = current_invocation()
    if invocation is None:
        return secure.id()
    return invocation.random_stream("/collection/" + collection_name(model)).id()


def collection_name(model: type[models.Model]) -> str:
    """The DDP collection name the client uses for `model`."""
    from dddp.api import API

    concrete = model._meta.concrete_model or model
    collection = API.collection_for_model(concrete)
    return collection.collection_name() if collection is not None else concrete._meta.label_lower
