"""Models with database defaults (Django 5.0+): installed only where Django has them."""

from django.db import models
from django.db.models.functions import Now


class Stamp(models.Model):
    label = models.CharField(max_length=50)
    counter = models.IntegerField(db_default=7)
    created = models.DateTimeField(db_default=Now())
    # Computed by PostgreSQL on every write: after a save the instance cannot know it.
    double = models.GeneratedField(
        expression=models.F("counter") * 2, output_field=models.IntegerField(), db_persist=True
    )
