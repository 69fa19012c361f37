"""Django system checks for dddp's configuration (ids dddp.E0xx, dddp.W0xx)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from dddp.conf import DEFAULTS


@checks.register(checks.Tags.database)
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
    """Every DDDP_* setting is known, and every number is a positive number."""
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
        may_be_zero = name == "HEARTBEAT_INTERVAL"
        wrong_type = isinstance(value, bool) or not isinstance(value, type(default) | int)
        if wrong_type or value < 0 or (value == 0 and not may_be_zero):
            messages.append(
                checks.Error(
                    f"DDDP_{name} must be a positive {type(default).__name__}, got {value!r}.",
                    hint=f"DDDP_{name} is the {meaning}; the default is {default!r}.",
                    id="dddp.E002",
                )
            )
    return messages
