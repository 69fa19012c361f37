from django.db import models

from dddp.fields import MeteorIdField


class Note(models.Model):
    """A row the test methods write, to check that failed methods keep nothing."""

    text = models.CharField(max_length=200)


class Author(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(unique=True)


class Tag(models.Model):
    name = models.CharField(max_length=50)


class Book(models.Model):
    """A book with one field of each kind a document must carry."""

    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)
    body = models.TextField(blank=True, default="")
    published = models.DateField(null=True, blank=True)
    price = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    pages = models.IntegerField(default=0)
    isbn = models.UUIDField(null=True, blank=True)
    cover = models.BinaryField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    tags = models.ManyToManyField(Tag, related_name="books", blank=True)


class PinnedNote(Note):
    """A proxy: its saves send signals with itself as the sender, not Note."""

    class Meta:
        proxy = True


class DatedNote(Note):
    """Multi-table inheritance: saving one writes a Note row too."""

    dated = models.DateField(null=True, blank=True)


class Task(models.Model):
    """Ids drawn from a DDP method's randomSeed, as a Meteor client's stub draws them."""

    id = MeteorIdField(primary_key=True)
    text = models.CharField(max_length=200)


class Label(models.Model):
    """A second collection with Meteor ids: its draws must not disturb Task's."""

    id = MeteorIdField(primary_key=True)
    name = models.CharField(max_length=50)
