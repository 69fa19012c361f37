"""Models with database defaults (Django 5.0+): installed only where Django has them."""

from django.db import models
from django.db.models.functions import Now


class Stamp(models.Model):
    label = models.CharField(max_length=50)
    counter = models.IntegerField(db_default=7)
    created = models.DateTimeField(db_default=Now())
