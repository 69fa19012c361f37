"""What the dddp server under test publishes."""

from dddp.api import API, Collection, Publication
from live_app import models


class Tick(Collection):
    model = models.Tick


class Bulk(Collection):
    model = models.Bulk


class AllTicks(Publication):
    queries = [models.Tick.objects.all()]


class AllBulks(Publication):
    def get_queries(self, run=0):
        # `run` changes nothing in the rows: it only makes each measured
        # subscription a distinct (publication, params) pair, so each one builds
        # and loads a new observer instead of joining the previous one.
        return [models.Bulk.objects.all()]


API.register([Tick, Bulk, AllTicks, AllBulks])
