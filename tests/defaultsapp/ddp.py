from dddp.api import API, Collection
from tests.defaultsapp import models


class StampCollection(Collection):
    model = models.Stamp


API.register([StampCollection])
