from django.conf import settings
from django.db import models


class Diary(models.Model):
    """A row that belongs to a user: what per-user publications are made of."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="diaries", on_delete=models.CASCADE)
    text = models.CharField(max_length=200)
    public = models.BooleanField(default=False)


class Secret(models.Model):
    """Only its owner may see it, in any publication (its Collection's user_rel)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="secrets", on_delete=models.CASCADE)
    text = models.CharField(max_length=200)


class Page(models.Model):
    """Seen by the owner of its secret: a user_rel through a relation."""

    secret = models.ForeignKey(Secret, related_name="pages", on_delete=models.CASCADE)
    text = models.CharField(max_length=200)
