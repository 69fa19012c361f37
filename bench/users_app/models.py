"""The logged-in users benchmark's table (`bench/users.py`): one row per user, seen only by
its owner, which the writer updates as `live_app.Tick` (`sent_at` just before `save()`)."""

from django.conf import settings
from django.db import models


class Note(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="+", on_delete=models.CASCADE)
    n = models.IntegerField(default=0)
    sent_at = models.FloatField(default=0.0)
