"""Model rows as DDP documents: their ids (D-55) and their fields.

A document's fields are named as Django's serializers name them: each
concrete field by its name, a foreign key by its field name with the related
row's document id (`"author": "3"`), a many-to-many field by its name with the
list of related document ids. Values are whatever EJSON makes of them
(`dddp.protocol.ejson`): datetimes become `$date`, dates ISO strings,
decimals and UUIDs strings, binary `$binary`, JSON fields stay JSON.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from dddp.protocol import ejson

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


def document_id(pk: Any) -> str:
    """The DDP id of a primary key, in Meteor's `MongoID.idStringify` form (D-55).

    Integers and UUIDs become plain strings ("5", "0b6f...-..."), so a Meteor
    client sees `_id` "5". A string pk passes through, except that one starting
    with "-", "~" or "{", or looking like an ObjectID (24 lowercase hex digits),
    gets a leading "-": the client strips it and sees the string itself.
    """
    if isinstance(pk, (int, uuid.UUID)) and not isinstance(pk, bool):
        pk = str(pk)  # and a negative number is escaped like a string: "-5" -> "--5"
    elif not isinstance(pk, str):
        raise TypeError(f"cannot publish a primary key of type {type(pk).__name__}: {pk!r}")
    if pk[:1] in ("-", "~", "{") or _OBJECT_ID.match(pk):
        return "-" + pk
    return pk


def instance_document_id(instance: models.Model, model: type[models.Model] | None = None) -> str:
    """The document id of a saved instance, whatever form its pk attribute was given in.

    An instance of a subclass (multi-table inheritance) has its parent's pk value.
    """
    return document_id((model or type(instance))._meta.pk.to_python(instance.pk))


def field_value(field: models.Field[Any, Any], raw: Any) -> Any:
    """One concrete field's value (an instance's attribute, or `.values()`) as a document value.

    An instance holds what the writer assigned, which Django does not convert
    on save ("7" for an integer, a naive datetime, Decimal("1.5") for a column
    of two decimal places): converting it here makes the document the same as
    the one read back from the row.
    """
    if raw is None:
        return None
    if field.is_relation:  # a foreign key or one-to-one: the related document's id
        return document_id(_target_field(field).to_python(raw))
    if isinstance(raw, memoryview):
        return raw.tobytes()
    if isinstance(field, models.FileField):
        return str(raw) or None
    if type(raw) is _NATURAL_TYPES.get(type(field)):
        return raw  # the common case, on every save: nothing to convert
    try:
        value = field.to_python(raw)
    except ValidationError:
        return raw  # the database accepted it: leave it as given
    if isinstance(value, decimal.Decimal) and getattr(field, "decimal_places", None) is not None:
        value = value.quantize(decimal.Decimal(1).scaleb(-field.decimal_places))  # type: ignore[attr-defined]
    elif isinstance(value, datetime.datetime) and settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value


# Field classes whose values, when of this exact type, are already what
# `to_python` would return (and what reading the row back gives).
_NATURAL_TYPES: dict[type[models.Field[Any, Any]], type] = {
    models.CharField: str,
    models.TextField: str,
    models.EmailField: str,
    models.SlugField: str,
    models.URLField: str,
    models.IntegerField: int,
    models.BigIntegerField: int,
    models.SmallIntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveBigIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.BooleanField: bool,
    models.FloatField: float,
}


def _target_field(field: models.Field[Any, Any]) -> models.Field[Any, Any]:
    """The field a relation finally points to (through one-to-one chains)."""
    while field.is_relation:
        field = field.target_field  # type: ignore[attr-defined]
    return field


def concrete_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The model's own columns, primary key excluded (it is the document id)."""
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def document_fields(instance: models.Model, model: type[models.Model] | None = None) -> dict[str, Any]:
    """The fields of an instance's document, from the values the instance holds.

    `model` is the published model when the instance is of a subclass of it
    (multi-table inheritance): the document has the parent's columns only.
    """
    return {
        field.name: field_value(field, getattr(instance, field.attname))
        for field in concrete_fields(model or type(instance))
    }


def fields_from_values(model: type[models.Model], values: dict[str, Any]) -> dict[str, Any]:
    """The fields of a document from a `.values(*attnames)` row of its model."""
    return {name: convert(values[attname]) for name, attname, convert in _converters(model)}  # type: ignore[arg-type]


@functools.cache
def _converters(model: type[models.Model]) -> tuple[tuple[str, str, Callable[[Any], Any]], ...]:
    """Per column: (field name, attname, value converter), made once per model.

    Reading a publication converts every column of every row: for the usual
    column types, a value read from the database already has the right type,
    and the converter only checks it.
    """
    converters = []
    for field in concrete_fields(model):
        natural = _NATURAL_TYPES.get(type(field))
        if natural is not None:
            convert = functools.partial(_natural_value, natural, field)
        else:
            convert = functools.partial(field_value, field)
        converters.append((field.name, field.attname, convert))
    return tuple(converters)


# Columns whose values, as psycopg2 reads them, are already what a Change payload
# carries: no conversion and no `canonical` check (integers of 32 bits or fewer
# never pass 2**53). Exact field classes only: a subclass may convert.
_READ_AS_IS: frozenset[type[models.Field[Any, Any]]] = frozenset(_NATURAL_TYPES) - {
    models.BigIntegerField,
    models.PositiveBigIntegerField,
}


def row_reader(model: type[models.Model]) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """A function from a `.values_list(*value_attnames(model))` row to the document's fields.

    The fields come out in `canonical` form, as `fields_from_values` and then
    `canonical` would give them, at a fraction of the cost: this runs for
    every row of every publication's first load.
    """
    return _row_readers(model)  # type: ignore[arg-type]


@functools.cache
def _row_readers(model: type[models.Model]) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    fields = concrete_fields(model)
    names = tuple(field.name for field in fields)
    converted = tuple(
        (field.name, convert)
        for field, (_name, _attname, convert) in zip(fields, _converters(model), strict=True)  # type: ignore[arg-type]
        if type(field) not in _READ_AS_IS
    )
    if not converted:

        def read(row: tuple[Any, ...]) -> dict[str, Any]:
            return dict(zip(names, row[1:], strict=True))

        return read

    def read_and_convert(row: tuple[Any, ...]) -> dict[str, Any]:
        document = dict(zip(names, row[1:], strict=True))
        for name, convert in converted:
            document[name] = convert(document[name])
        return canonical(document)

    return read_and_convert


def id_reader(model: type[models.Model]) -> Callable[[Any], str]:
    """`document_id` for this model's primary keys as the database returns them."""
    if type(model._meta.pk) in _INTEGER_KEYS:
        return _integer_document_id
    return document_id


_INTEGER_KEYS: frozenset[type[models.Field[Any, Any]]] = frozenset(
    {
        models.AutoField,
        models.BigAutoField,
        models.SmallAutoField,
        models.IntegerField,
        models.BigIntegerField,
        models.SmallIntegerField,
    }
)


def _integer_document_id(pk: int) -> str:
    text = str(pk)
    return text if pk >= 0 else "-" + text  # escaped as document_id escapes a negative


def _natural_value(natural: type, field: models.Field[Any, Any], raw: Any) -> Any:
    return raw if raw is None or type(raw) is natural else field_value(field, raw)


def value_attnames(model: type[models.Model]) -> list[str]:
    """What to pass to `.values()` for `fields_from_values` (and the pk)."""
    return [model._meta.pk.attname] + [f.attname for f in concrete_fields(model)]


def document_pk(model: type[models.Model], doc_id: str) -> Any:
    """The primary key a document id stands for (the inverse of `document_id`)."""
    raw = doc_id[1:] if doc_id.startswith("-") else doc_id
    return _target_field(model._meta.pk).to_python(raw)


def related_key(field: models.Field[Any, Any], doc_id: str) -> Any:
    """What a foreign key holds for the document id it is published as (the inverse of `field_value`)."""
    raw = doc_id[1:] if doc_id.startswith("-") else doc_id
    return _target_field(field).to_python(raw)


def canonical(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as a Change payload delivers them (EJSON-encoded, then decoded).

    Rows read from the database hold dates, decimals and microseconds that a
    payload holds as strings and milliseconds; comparing the two forms would
    find changes where there are none.
    """
    if all(_is_plain(value) for value in fields.values()):
        return fields  # already as a payload delivers it: the usual case, and no copy
    decoded: dict[str, Any] = ejson.from_json_value(ejson.to_json_value(fields))
    return decoded


_MAX_SAFE_INTEGER = 2**53 - 1


def _is_plain(value: Any) -> bool:
    """Whether EJSON gives `value` back as it is (ints beyond 2**53 come back as strings)."""
    kind = type(value)
    if kind is str or kind is bool or value is None or kind is float:
        return True
    if kind is int:
        return -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER
    if kind is list:
        return all(type(item) is str for item in value)  # many-to-many ids
    return False


def many_to_many_ids(
    model: type[models.Model],
    field: models.ManyToManyField[Any, Any],
    pks: list[Any],
    using: str | None = None,
) -> dict[Any, list[str]]:
    """For each pk, the document ids its many-to-many `field` holds, in the order they were added."""
    through: Any = field.remote_field.through  # a model class once the app registry is ready
    source = through._meta.get_field(field.m2m_field_name()).attname
    target = through._meta.get_field(field.m2m_reverse_field_name()).attname
    related: dict[Any, list[str]] = {pk: [] for pk in pks}
    rows = (
        through._default_manager.using(using)
        .filter(**{f"{source}__in": pks})
        .order_by(through._meta.pk.attname)
        .values_list(source, target)
    )
    for source_pk, target_pk in rows:
        related[source_pk].append(document_id(target_pk))
    return related
