"""A client's document values and update modifiers onto a model row (for `dddp.writes`; M-3).

Values are what `dddp.documents` publishes: a foreign key's is the related
document's id, a many-to-many field's the list of related ids. `assign` puts
one onto an instance, refusing JSON the field cannot hold (an object for a
text field, a boolean for a number); the model's own validation
(`full_clean`) judges the rest. A refusal is a 400 whose reason starts with
the field's name.

`parse` reads an update modifier into `Changes`, checking all that can be
checked without the row; `Changes.apply` then validates the row's new values
and saves them. The operators are Meteor's for untrusted code:

- `$set`, `$unset`: any field. `$unset` sets None when the field is nullable,
  else its default (`get_default()`, which is "" for a text field without
  one); a field with neither is refused by its validation.
- `$inc` (numbers) and `$bit` (integers: `{"and" | "or" | "xor": n}`).
- On many-to-many lists: `$set` a list, `$unset` clears it; `$push` and
  `$addToSet` (an id, or `{"$each": [ids]}`), `$pushAll`; `$pull` (an id, or
  `{"$in": [ids]}`), `$pullAll`; `$pop` (1: the last id, -1: the first). A
  many-to-many list is a set: pushing an id it holds changes nothing, as
  `$addToSet` would, and the ids one operator adds come last in the
  database's order, not necessarily in the modifier's (Django's `add()`).

Dotted paths (`"data.size"`, into a JSONField) are refused with 400: a
client sets the whole field.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models

from dddp.documents import document_pk, many_to_many_ids, related_key
from dddp.protocol.errors import MeteorError

#: Meteor's operators for updates from untrusted code (allow-deny.js, ALLOWED_UPDATE_OPERATIONS).
ALLOWED_OPERATORS = (
    "$inc",
    "$set",
    "$unset",
    "$addToSet",
    "$pop",
    "$pullAll",
    "$pull",
    "$pushAll",
    "$push",
    "$bit",
)

REPLACEMENT_REFUSED = (
    "Access denied. In a restricted collection you can only update documents, not replace them. "
    "Use a Mongo update operator, such as '$set'."
)

_ADDING = ("$set", "$push", "$addToSet", "$pushAll")
_BIT_OPERATIONS = {"and": int.__and__, "or": int.__or__, "xor": int.__xor__}


# --- errors --------------------------------------------------------------------------


def bad_field(name: str, text: str) -> MeteorError:
    """400 for a value (or an operation) that field `name` cannot take."""
    return MeteorError(400, f"{name}: {text}", {name: [text]})


def unknown_field(name: str, collection_name: str) -> MeteorError:
    # One text for a field that does not exist and one the Collection does not
    # publish: an unpublished field's existence is not the client's to learn.
    return bad_field(name, f"not a field clients may write in {collection_name} documents.")


def operator_refused(operator: str) -> MeteorError:
    return MeteorError(403, f"Access denied. Operator {operator} not allowed in a restricted collection.")


def invalid(exc: ValidationError, id_field: str | None = None) -> MeteorError:
    """400 for the model's validation errors, each after the name of its field (`id_field` as `_id`)."""
    errors: dict[str, list[str]] = (
        exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    )
    named = {("_id" if name == id_field else name): messages for name, messages in errors.items()}
    reason = " ".join(
        " ".join(messages) if name == NON_FIELD_ERRORS else f"{name}: {' '.join(messages)}"
        for name, messages in named.items()
    )
    return MeteorError(400, reason, named)


def json_kind(value: Any) -> str:
    """What kind of JSON value this is, for error texts."""
    if value is None:
        return "null"
    kinds = ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (dict, "an object"))
    for kind, text in kinds:
        if isinstance(value, kind):
            return text
    return "an array" if isinstance(value, list) else f"a {type(value).__name__}"


# --- values --------------------------------------------------------------------------


def assign(instance: models.Model, field: models.Field[Any, Any], value: Any) -> None:
    """Put a document's value of a (concrete) field onto the instance, as the model holds it."""
    _check_kind(field, value)
    if field.is_relation and value is not None:
        if not isinstance(value, str):
            raise bad_field(field.name, f"a document id is a string, got {json_kind(value)}.")
        try:
            value = related_key(field, value)
        except ValidationError as exc:
            raise bad_field(field.name, " ".join(exc.messages)) from None
    setattr(instance, field.attname, value)


def _check_kind(field: models.Field[Any, Any], value: Any) -> None:
    """Refuse JSON values the field's own `to_python` would wrongly accept (str() of a list, int(True))."""
    if value is None:
        if not field.null:
            raise bad_field(field.name, str(field.error_messages["null"]))
        return
    if isinstance(field, models.JSONField) or type(field).__module__.startswith("django.contrib.postgres"):
        return  # fields of JSON, arrays, ranges: their validation knows containers
    if isinstance(value, (dict, list)) or (
        isinstance(value, bool) and not isinstance(field, models.BooleanField)
    ):
        raise bad_field(field.name, f"{json_kind(value)} is not a value of this field.")
    if isinstance(value, float) and isinstance(field, models.IntegerField) and not value.is_integer():
        raise bad_field(field.name, f"{value!r} is not an integer.")


def related_pks(field: models.Field[Any, Any], ids: Any) -> list[Any]:
    """The primary keys of a many-to-many list's document ids."""
    if not isinstance(ids, list) or not all(isinstance(doc_id, str) for doc_id in ids):
        raise bad_field(field.name, f"a list of document ids (strings) was expected, got {json_kind(ids)}.")
    try:
        return [document_pk(field.related_model, doc_id) for doc_id in ids]  # type: ignore[arg-type]
    except ValidationError as exc:
        raise bad_field(field.name, " ".join(exc.messages)) from None


def check_related_exist(field: models.Field[Any, Any], pks: list[Any]) -> None:
    """400 unless every pk is a row the many-to-many field may hold (before anything is written)."""
    related: Any = field.related_model
    found = set(
        related._base_manager.filter(pk__in=pks)
        .complex_filter(field.get_limit_choices_to())  # type: ignore[attr-defined]
        .values_list("pk", flat=True)
    )
    missing = [pk for pk in pks if pk not in found]
    if missing:
        raise bad_field(
            field.name, f"{related._meta.label_lower} instance with id {missing[0]!r} does not exist."
        )


# --- update modifiers ----------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One operator on one field; for a many-to-many field, `argument` holds primary keys."""

    operator: str
    field: models.Field[Any, Any]
    argument: Any


@dataclass(frozen=True)
class Changes:
    """What an update modifier changes, checked as far as it can be without the row."""

    changes: list[Change]
    #: The fields it changes, in the modifier's order (the allow/deny rules' `field_names`).
    field_names: list[str]

    def apply(self, instance: models.Model) -> None:
        """Validate the row's new values, then save them (raises ValidationError, MeteorError)."""
        columns = [change for change in self.changes if not change.field.many_to_many]
        lists = [change for change in self.changes if change.field.many_to_many]
        for change in columns:
            _apply_to_column(instance, change)
        unchanged = {field.name for field in instance._meta.fields} - {
            change.field.name for change in columns
        }
        # Unique columns and constraints are the database's to check: a conflict is a 409.
        instance.full_clean(exclude=unchanged, validate_unique=False, validate_constraints=False)
        for change in lists:
            if change.operator in _ADDING:
                check_related_exist(change.field, change.argument)
        if columns:
            instance.save(update_fields=[change.field.name for change in columns])
        for change in lists:
            _apply_to_list(instance, change)


def parse(
    modifier: dict[str, Any], fields: dict[str, models.Field[Any, Any]], collection_name: str
) -> Changes:
    """The changes of an update modifier onto the writable `fields` (403s as Meteor's, else 400s)."""
    # Meteor refuses the modifier's form, key by key, before looking at any field (allow-deny.js).
    if not modifier:
        raise MeteorError(403, REPLACEMENT_REFUSED)
    for operator in modifier:
        if not operator.startswith("$"):
            raise MeteorError(403, REPLACEMENT_REFUSED)
        if operator not in ALLOWED_OPERATORS:
            raise operator_refused(operator)
    changes: list[Change] = []
    names: list[str] = []
    for operator, arguments in modifier.items():
        if not isinstance(arguments, dict):
            raise MeteorError(400, f"{operator} takes an object of fields, got {json_kind(arguments)}")
        for path, argument in arguments.items():
            field = _field_at(path, fields, collection_name)
            if field.name in names:
                raise bad_field(field.name, "changed by more than one operator.")
            names.append(field.name)
            changes.append(_change(operator, field, argument))
    return Changes(changes, names)


def _field_at(
    path: str, fields: dict[str, models.Field[Any, Any]], collection_name: str
) -> models.Field[Any, Any]:
    if path == "_id":
        raise bad_field("_id", "a document's id cannot be changed.")
    if "." in path:
        raise bad_field(path, f"dotted paths are not supported: set the whole {path.split('.')[0]!r} field.")
    if path not in fields:
        raise unknown_field(path, collection_name)
    return fields[path]


def _change(operator: str, field: models.Field[Any, Any], argument: Any) -> Change:
    if field.many_to_many:
        return Change(operator, field, _list_argument(operator, field, argument))
    if operator == "$inc":
        if not isinstance(field, (models.IntegerField, models.FloatField, models.DecimalField)):
            raise bad_field(field.name, "$inc applies to number fields only.")
        if isinstance(argument, bool) or not isinstance(argument, (int, float)):
            raise bad_field(field.name, f"$inc takes a number, got {json_kind(argument)}.")
    elif operator == "$bit":
        if not isinstance(field, models.IntegerField):
            raise bad_field(field.name, "$bit applies to integer fields only.")
        if (
            not isinstance(argument, dict)
            or not argument
            or any(
                key not in _BIT_OPERATIONS or isinstance(value, bool) or not isinstance(value, int)
                for key, value in argument.items()
            )
        ):
            raise bad_field(field.name, '$bit takes {"and" | "or" | "xor": an integer}.')
    elif operator not in ("$set", "$unset"):
        raise bad_field(field.name, f"{operator} applies to many-to-many lists only.")
    return Change(operator, field, argument)


def _list_argument(operator: str, field: models.Field[Any, Any], argument: Any) -> Any:
    """The primary keys an operator on a many-to-many list names (or $pop's end)."""
    if operator in ("$set", "$pushAll", "$pullAll"):
        return related_pks(field, argument)
    if operator in ("$push", "$addToSet"):
        return related_pks(field, _listed(field, argument, "$each", operator))
    if operator == "$pull":
        return related_pks(field, _listed(field, argument, "$in", operator))
    if operator == "$pop":
        if argument not in (1, -1) or isinstance(argument, bool):
            raise bad_field(field.name, "$pop takes 1 (the last id) or -1 (the first).")
        return argument
    if operator == "$unset":
        return None
    raise bad_field(field.name, f"{operator} does not apply to a many-to-many list.")


def _listed(field: models.Field[Any, Any], argument: Any, key: str, operator: str) -> Any:
    """The ids of `id` or `{key: [ids]}`."""
    if not isinstance(argument, dict):
        return [argument]
    if list(argument) != [key]:
        raise bad_field(field.name, f"{operator} takes an id or {{{key!r}: [ids]}}, got {sorted(argument)}.")
    return argument[key]


def _apply_to_column(instance: models.Model, change: Change) -> None:
    field = change.field
    if change.operator == "$set":
        assign(instance, field, change.argument)
        return
    if change.operator == "$unset":
        value = None if field.null else field.get_default()
    else:
        current = getattr(instance, field.attname)
        if current is None:
            raise bad_field(field.name, f"{change.operator} cannot change a null value.")
        value = (
            _inc(current, change.argument) if change.operator == "$inc" else _bit(current, change.argument)
        )
    _check_kind(field, value)
    setattr(instance, field.attname, value)


def _inc(current: Any, amount: int | float) -> Any:
    if isinstance(current, decimal.Decimal):
        return current + decimal.Decimal(str(amount))
    return current + amount


def _bit(current: int, operations: dict[str, int]) -> int:
    for name, operand in operations.items():
        current = _BIT_OPERATIONS[name](current, operand)
    return current


def _apply_to_list(instance: models.Model, change: Change) -> None:
    related = getattr(instance, change.field.name)
    if change.operator == "$set":
        related.set(change.argument)
    elif change.operator == "$unset":
        related.clear()
    elif change.operator in _ADDING:
        related.add(*change.argument)
    elif change.operator in ("$pull", "$pullAll"):
        related.remove(*change.argument)
    else:  # $pop: the list in its published order (dddp.documents.many_to_many_ids)
        ids = many_to_many_ids(change.field.model, change.field, [instance.pk])[instance.pk]  # type: ignore[arg-type]
        if ids:
            related.remove(document_pk(change.field.related_model, ids[-1 if change.argument == 1 else 0]))  # type: ignore[arg-type]
