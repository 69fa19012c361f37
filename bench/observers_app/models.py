"""The observers benchmark's tables (`bench/observers.py`): the brief's authors and books,
one book per author, which the writer updates as `live_app.Tick` (`sent_at` just before
`save()`)."""

from django.db import models


class Author(models.Model):
    email = models.EmailField(unique=True)
    n = models.IntegerField(default=0)  # for the writes of authors (bench/observers.py)
    sent_at = models.FloatField(default=0.0)


class Book(models.Model):
    author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)
    n = models.IntegerField(default=0)
    sent_at = models.FloatField(default=0.0)
