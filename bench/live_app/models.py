"""The benchmark's tables: same columns, different roles.

- `Tick`: published by dddp (see ddp.py); the writer updates its rows.
- `FloorTick`: the same table for the Node floor, fed by a PostgreSQL trigger.
  It is not a dddp Collection, so its saves pay only the trigger's NOTIFY, and
  Tick's saves never pay for the trigger.
- `Bulk`: the 10,000 rows of the `ready` benchmark, kept apart so that the
  Tick publication stays small while thousands of clients subscribe to it.
"""

from django.db import models


class Tick(models.Model):
    n = models.IntegerField(default=0)
    sent_at = models.FloatField(default=0.0)  # the writer's time.time() just before save()


class FloorTick(models.Model):
    n = models.IntegerField(default=0)
    sent_at = models.FloatField(default=0.0)


class Bulk(models.Model):
    n = models.IntegerField(default=0)
    sent_at = models.FloatField(default=0.0)
