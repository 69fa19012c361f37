from django.conf import settings
from django.db import models


class Diary(models.Model):
    """A row that belongs to a user: what per-user publications are made of."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="diaries", on_delete=models.CASCADE)
    text = models.CharField(max_length=200)
    public = models.BooleanField(default=False)
