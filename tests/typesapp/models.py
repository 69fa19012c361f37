"""Models with one column of each kind, for the in-memory matcher and document tests."""

import uuid

from django.db import models


class Group(models.Model):
    name = models.CharField(max_length=50)


class Sample(models.Model):
    """A row with a nullable column of each type a publication may filter on."""

    num = models.IntegerField(null=True)
    big = models.BigIntegerField(null=True)
    ratio = models.FloatField(null=True)
    label = models.CharField(max_length=50, null=True, blank=True)
    flag = models.BooleanField(null=True)
    day = models.DateField(null=True)
    group = models.ForeignKey(Group, null=True, blank=True, related_name="samples", on_delete=models.SET_NULL)
    amount = models.DecimalField(max_digits=12, decimal_places=3, null=True)
    stamp = models.DateTimeField(null=True)
    uid = models.UUIDField(null=True)
    data = models.JSONField(null=True)
    span = models.DurationField(null=True)
    blob = models.BinaryField(null=True)
    attachment = models.FileField(blank=True)  # "" (not NULL) when there is no file
    code = models.CharField(max_length=20, blank=True, default="", db_collation="C")


class UuidKeyed(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=50, blank=True, default="")


class CharKeyed(models.Model):
    key = models.CharField(primary_key=True, max_length=60)
    name = models.CharField(max_length=50, blank=True, default="")


class CharKeyedProfile(models.Model):
    """A primary key that is a one-to-one link to a CharField primary key."""

    owner = models.OneToOneField(CharKeyed, primary_key=True, on_delete=models.CASCADE)
    bio = models.CharField(max_length=50, blank=True, default="")


class Record(models.Model):
    """Relations, files and binary data, as documents carry them."""

    title = models.CharField(max_length=50)
    owner = models.ForeignKey(CharKeyed, null=True, blank=True, on_delete=models.SET_NULL)
    keyed = models.ForeignKey(UuidKeyed, null=True, blank=True, related_name="+", on_delete=models.SET_NULL)
    file = models.FileField(blank=True)
    blob = models.BinaryField(null=True)
    day = models.DateField(null=True)
    amount = models.DecimalField(max_digits=8, decimal_places=2, null=True)
    stamp = models.DateTimeField(null=True)
    uid = models.UUIDField(null=True)
    tags = models.ManyToManyField(UuidKeyed, blank=True, related_name="records")
