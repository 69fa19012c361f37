"""The brief's bookstore: authors and their books."""

from django.db import models

from dddp.fields import MeteorIdField


class Author(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(unique=True)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    # A Meteor client's Books.insert({...}) shows the book at once under the id its
    # stub drew; the server's row gets that id too (dddp.fields), so nothing flickers.
    id = MeteorIdField(primary_key=True)
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, related_name="books", on_delete=models.CASCADE)

    def __str__(self) -> str:
        return self.title
