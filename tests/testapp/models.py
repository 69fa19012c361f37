from django.db import models


class Note(models.Model):
    """A row the test methods write, to check that failed methods keep nothing."""

    text = models.CharField(max_length=200)
