"""Django system checks for dddp's configuration (ids dddp.E0xx, dddp.W0xx).

Registered when the dddp app is ready: the settings (E001, E002, W001), and
what ddp.py modules register in `dddp.api.API`: collections (E003, E004, E011)
and publications (`dddp.publication_checks`: E005-E010, W002-W004). Django runs
checks once every app is ready, so after the ddp.py modules are imported.
"""

from __future__ import annotations

import difflib
import inspect
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import checks
from django.db import models

from dddp.conf import DEFAULTS
from dddp.documents import concrete_fields
from dddp.publication_checks import Problem, describe, publication_problems

if TYPE_CHECKING:
    from dddp.api import Collection, Registry


# Not tagged `database`: Django documents such checks as run only by `migrate` and
# `check --database`, and this one reads only settings.
@checks.register()
def check_database_is_postgresql(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """dddp sends changes with PostgreSQL NOTIFY: the default database must be PostgreSQL."""
    engine = settings.DATABASES.get("default", {}).get("ENGINE", "")
    if engine.endswith((".postgresql", ".postgis")):  # PostGIS is PostgreSQL too
        return []
    return [
        checks.Error(
            f"dddp needs PostgreSQL, but DATABASES['default'] uses {engine!r}.",
            hint="Set DATABASES['default']['ENGINE'] to 'django.db.backends.postgresql'.",
            id="dddp.E001",
        )
    ]


@checks.register()
def check_dddp_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every DDDP_* setting is known, every number a positive number, every text a non-empty one."""
    messages: list[checks.CheckMessage] = []
    for name in dir(settings):
        if name.startswith("DDDP_") and name[5:] not in DEFAULTS:
            messages.append(
                checks.Warning(
                    f"Unknown setting {name}: dddp will ignore it.",
                    hint="Known settings: " + ", ".join(f"DDDP_{n}" for n in sorted(DEFAULTS)),
                    id="dddp.W001",
                )
            )
    for name, (default, meaning) in DEFAULTS.items():
        value = getattr(settings, f"DDDP_{name}", default)
        if name == "SOCKJS_PREFIX":
            wanted = 'a path such as "/sockjs" (a leading slash, no trailing one)'
            bad = not isinstance(value, str) or not value.startswith("/") or value.endswith("/")
        elif name == "RATE_LIMITS":
            wanted = 'a list of rules such as {"type": "method", "requests": 10, "interval": 1.0}'
            bad = _rate_limits_problem(value) is not None
            if bad:
                wanted += f" ({_rate_limits_problem(value)})"
        elif name == "ALLOWED_ORIGINS":
            wanted = 'a list of origins such as "https://app.example.com", "https://*.example.com", "*"'
            bad = not isinstance(value, list | tuple) or not all(_is_origin(origin) for origin in value)
        elif name in ("PASSWORD_RESET_URL", "VERIFY_EMAIL_URL"):
            wanted = 'a URL with {token} in it, or ""'
            bad = not isinstance(value, str) or (bool(value) and "{token}" not in value)
        elif name == "ACCOUNTS_EMAIL_VERIFIED_FIELD":
            wanted = 'a field name, or "" for none'
            bad = not isinstance(value, str)
        elif isinstance(default, str):
            wanted, bad = "a non-empty string", not isinstance(value, str) or not value.strip()
        elif isinstance(default, bool):
            wanted, bad = "True or False", not isinstance(value, bool)
        else:
            may_be_zero = name in ("HEARTBEAT_INTERVAL", "SOCKJS_MAX_SESSIONS_PER_ADDRESS")
            wrong_type = isinstance(value, bool) or not isinstance(value, type(default) | int)
            wanted = f"a positive {type(default).__name__}"
            bad = wrong_type or value < 0 or (value == 0 and not may_be_zero)
        if bad:
            messages.append(
                checks.Error(
                    f"DDDP_{name} must be {wanted}, got {value!r}.",
                    hint=f"DDDP_{name} is the {meaning}; the default is {default!r}.",
                    id="dddp.E002",
                )
            )
    return messages


def _rate_limits_problem(value: object) -> str | None:
    from dddp.rate_limits import Rule

    if not isinstance(value, list | tuple):
        return "not a list"
    for rule in value:
        if not isinstance(rule, dict):
            return f"{rule!r} is not a dict"
        try:
            Rule(**rule)
        except (TypeError, ValueError) as exc:
            return str(exc)
    return None


def _is_origin(value: object) -> bool:
    """An entry of DDDP_ALLOWED_ORIGINS: "*", "null", or scheme://host[:port] with no path."""
    if value in ("*", "null"):
        return True
    if not isinstance(value, str) or "://" not in value:
        return False
    scheme, _, host = value.partition("://")
    host = host.removeprefix("*.")  # its subdomains
    return bool(scheme) and bool(host) and "/" not in host and "*" not in host


@checks.register()
def check_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The collections and publications of `dddp.api.API`, as far as can be told without the database."""
    from dddp.api import API

    return registry_messages(API, app_configs)


def registry_messages(registry: Registry, app_configs: Any = None) -> list[checks.CheckMessage]:
    """Every problem of the registry's collections and publications, as check messages.

    With `app_configs` (`manage.py check some_app`), only the classes defined in those apps.
    """
    wanted = None if app_configs is None else tuple(config.name for config in app_configs)
    messages: list[checks.CheckMessage] = []
    for collection in registry.collections.values():
        if _defined_in(collection, wanted):
            messages += [_message(p, collection) for p in collection_problems(collection)]
    for publication in registry.publications.values():
        if _defined_in(publication, wanted):
            messages += [_message(p, publication) for p in publication_problems(registry, publication)]
    return messages


def _message(problem: Problem, item: type) -> checks.CheckMessage:
    kind = checks.Error if problem.is_error else checks.Warning
    return kind(problem.msg, hint=problem.hint, obj=_dotted_name(item), id=problem.id)


# --- collections (E003, E004, E011) -----------------------------------------------------------


def collection_problems(collection: type[Collection]) -> list[Problem]:
    name = collection.__name__
    model = getattr(collection, "model", None)
    if not (inspect.isclass(model) and issubclass(model, models.Model)):
        return [
            Problem(
                "dddp.E003",
                f"{name}.model is {describe(model)}, not a Django model class.",
                "Set model to the model class whose rows it publishes, e.g. model = models.Book.",
            )
        ]
    meta = model._meta
    if meta.abstract or meta.proxy:
        if meta.abstract:
            kind = "an abstract model: it has no table"
            hint = "Set model to a concrete subclass of it: each concrete model needs its own Collection."
        else:
            concrete = (meta.concrete_model or model)._meta.object_name
            kind = "a proxy model: its Collection would never be found nor notified"
            hint = f"Set model = {concrete}: that Collection publishes querysets of the proxy too."
        return [Problem("dddp.E003", f"{name}.model is {meta.label}, {kind}.", hint)]
    if meta.swapped:
        return [
            Problem(
                "dddp.E003",
                f"{name}.model is {meta.label}, which is swapped for {meta.swapped}.",
                f"Set model to the model of settings.{meta.swappable}.",
            )
        ]
    key = _target_field(meta.pk)
    if isinstance(key, _UNPUBLISHABLE_KEYS):
        return [
            Problem(
                "dddp.E011",
                f"{name}.model is {meta.label}, whose primary key is a {type(key).__name__}: "
                "dddp cannot make document ids of it.",
                "Publish a model whose primary key is an integer, a UUID or a string "
                "(a document's id is its primary key as a string).",
            )
        ]
    choices = [field.name for field in concrete_fields(model)] + [field.name for field in meta.many_to_many]
    problems = []
    for attribute in ("fields", "exclude"):
        names = getattr(collection, attribute)
        if names is None and attribute == "fields":
            continue
        if not isinstance(names, (list, tuple, set, frozenset)):  # a string is not: "tit" in "title"
            problems.append(
                Problem(
                    "dddp.E004",
                    f"{name}.{attribute} is {describe(names)}, not a list.",
                    f"Write {attribute} = [{', '.join(repr(c) for c in choices[:2])}].",
                )
            )
            continue
        for field_name in names:
            if field_name not in choices:
                problems.append(_unknown_field(name, attribute, model, field_name, choices))
    problems.extend(_user_rel_problems(collection, model))
    return problems


def _user_rel_problems(collection: type[Collection], model: type[models.Model]) -> list[Problem]:
    """dddp.E012: a `user_rel` that is not a lookup from the model to the user model."""
    from django.contrib.auth import get_user_model
    from django.core.exceptions import FieldDoesNotExist, FieldError

    rule = getattr(collection, "user_rel", None)
    if rule is None:
        return []
    relations = [rule] if isinstance(rule, str) else rule
    if not isinstance(relations, (list, tuple)) or not all(isinstance(r, str) and r for r in relations):
        return [
            Problem(
                "dddp.E012",
                f"{collection.__name__}.user_rel is {describe(rule)}, not a lookup or a list of lookups.",
                'Write user_rel = "owner" (or "author__owner", or a list of such).',
            )
        ]
    problems = []
    user_model = get_user_model()
    for relation in relations:
        path = relation.split("__")
        try:
            current: Any = model
            for part in path:
                current = current._meta.get_field(part).related_model
                if current is None:
                    raise FieldError(f"{part} is not a relation")
            if current is not user_model:
                raise FieldError(f"it leads to {current._meta.label}, not to {user_model._meta.label}")
        except (FieldError, FieldDoesNotExist, AttributeError) as exc:
            problems.append(
                Problem(
                    "dddp.E012",
                    f"{collection.__name__}.user_rel {relation!r} is not a relation from "
                    f"{model._meta.label} to the user model: {exc}.",
                    "Name the foreign keys (or many-to-many fields) to follow, joined by __, as in a "
                    'filter: "owner", "author__owner".',
                )
            )
    return problems


# Django's fields whose values `dddp.documents.document_id` refuses (it takes int,
# UUID and str). Other fields, a project's own among them, are given the benefit of the doubt.
_UNPUBLISHABLE_KEYS: tuple[type, ...] = (
    models.DateField,  # and DateTimeField
    models.TimeField,
    models.DurationField,
    models.DecimalField,
    models.FloatField,
    models.BooleanField,
    models.BinaryField,
    models.JSONField,
    *([models.CompositePrimaryKey] if hasattr(models, "CompositePrimaryKey") else []),  # Django 5.2+
)


def _target_field(field: Any) -> Any:
    """The field a (one-to-one) primary key finally holds the values of."""
    while field is not None and field.is_relation:
        field = field.target_field
    return field


def _unknown_field(
    name: str, attribute: str, model: type[models.Model], field_name: Any, choices: list[str]
) -> Problem:
    msg = f"{name}.{attribute} names {field_name!r}, which is not a field of {model._meta.label}'s documents."
    if field_name in (model._meta.pk.name, model._meta.pk.attname, "pk"):
        hint = "The primary key is the document's id, not one of its fields."
    else:
        close = difflib.get_close_matches(str(field_name), choices, n=1)  # "author_id" -> "author"
        hint = f"Did you mean {close[0]!r}? " if close else ""
        hint += "Choices are: " + ", ".join(choices) + "."
    return Problem("dddp.E004", msg, hint)


# --- helpers ----------------------------------------------------------------------------


def _defined_in(item: type, apps: tuple[str, ...] | None) -> bool:
    module = item.__module__
    return apps is None or any(module == app or module.startswith(app + ".") for app in apps)


def _dotted_name(item: type) -> str:
    return f"{item.__module__}.{item.__qualname__}"
