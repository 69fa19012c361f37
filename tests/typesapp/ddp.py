"""Every typesapp model is a Collection, so saves of them send Changes."""

from dddp.api import API, Collection
from tests.typesapp import models


class GroupCollection(Collection):
    model = models.Group


class SampleCollection(Collection):
    model = models.Sample


class UuidKeyedCollection(Collection):
    model = models.UuidKeyed


class CharKeyedCollection(Collection):
    model = models.CharKeyed


class CharKeyedProfileCollection(Collection):
    model = models.CharKeyedProfile


class RecordCollection(Collection):
    model = models.Record


API.register(
    [
        GroupCollection,
        SampleCollection,
        UuidKeyedCollection,
        CharKeyedCollection,
        CharKeyedProfileCollection,
        RecordCollection,
    ]
)
