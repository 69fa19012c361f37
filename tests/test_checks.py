"""dddp.checks: system checks for the database engine and the DDDP_* settings."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from dddp.checks import check_database_is_postgresql, check_dddp_settings


def dddp_messages() -> list[checks.CheckMessage]:
    """What every registered check says about dddp (what `manage.py check` would print)."""
    return [m for m in checks.run_checks() if (m.id or "").startswith("dddp.")]


@contextmanager
def default_engine(engine: str) -> Iterator[None]:
    """DATABASES['default'] with another ENGINE, for the check to read (no connection is made)."""
    with warnings.catch_warnings():
        # Django warns that overriding DATABASES is unusual; the check only reads it.
        warnings.filterwarnings("ignore", "Overriding setting DATABASES", UserWarning)
        with override_settings(DATABASES={"default": {"ENGINE": engine, "NAME": "x"}}):
            yield


def test_default_configuration_gives_no_dddp_messages() -> None:
    assert dddp_messages() == []


# --- the database engine ---------------------------------------------------------------


@pytest.mark.parametrize("engine", ["django.db.backends.sqlite3", "django.db.backends.mysql", ""])
def test_a_database_that_is_not_postgresql_is_e001_with_a_hint(engine: str) -> None:
    with default_engine(engine):
        (error,) = check_database_is_postgresql()
        assert error in dddp_messages()  # registered, so `manage.py check` reports it

    assert error.id == "dddp.E001"
    assert error.level == checks.ERROR
    assert repr(engine) in error.msg
    assert error.hint == "Set DATABASES['default']['ENGINE'] to 'django.db.backends.postgresql'."


def test_postgresql_engine_passes() -> None:
    with default_engine("django.db.backends.postgresql"):
        assert check_database_is_postgresql() == []


def test_postgis_engine_is_postgresql_too() -> None:
    """GeoDjango's PostGIS backend is PostgreSQL, with NOTIFY/LISTEN: no E001."""
    with default_engine("django.contrib.gis.db.backends.postgis"):
        assert check_database_is_postgresql() == []


# --- DDDP_* settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "default"),
    [
        ("MAX_MESSAGE_SIZE", -1, "1048576"),
        ("MAX_MESSAGE_SIZE", 0, "1048576"),
        ("MAX_MESSAGE_SIZE", 1.5, "1048576"),  # a count of bytes is a whole number
        ("MAX_SEND_QUEUE_BYTES", "16MB", "16777216"),
        ("MAX_SUBSCRIPTIONS", 0, "1000"),
        ("METHOD_WORKERS", 0, "8"),
        ("METHOD_WORKERS", True, "8"),
        ("METHOD_WORKERS", None, "8"),
        ("HEARTBEAT_INTERVAL", -1, "15.0"),
        ("HEARTBEAT_TIMEOUT", 0, "15.0"),
        ("HEARTBEAT_TIMEOUT", "15", "15.0"),
        ("SHUTDOWN_TIMEOUT", False, "10.0"),
    ],
)
def test_a_bad_dddp_setting_is_e002_with_a_hint_naming_the_default(
    name: str, value: Any, default: str
) -> None:
    with override_settings(**{f"DDDP_{name}": value}):
        messages = dddp_messages()

    assert [m.id for m in messages] == ["dddp.E002"]
    (error,) = messages
    assert error.level == checks.ERROR
    assert f"DDDP_{name}" in error.msg
    assert repr(value) in error.msg
    assert f"the default is {default}" in error.hint


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEARTBEAT_INTERVAL", 0),  # 0 turns heartbeats off
        ("HEARTBEAT_INTERVAL", 0.0),
        ("HEARTBEAT_TIMEOUT", 30),  # a whole number of seconds is fine
        ("METHOD_WORKERS", 1),
        ("MAX_MESSAGE_SIZE", 65536),
        ("SHUTDOWN_TIMEOUT", 0.5),
    ],
)
def test_good_dddp_settings_pass(name: str, value: Any) -> None:
    with override_settings(**{f"DDDP_{name}": value}):
        assert check_dddp_settings() == []


def test_each_bad_setting_gets_its_own_error() -> None:
    with override_settings(DDDP_METHOD_WORKERS=0, DDDP_HEARTBEAT_TIMEOUT=-5):
        errors = check_dddp_settings()

    assert sorted(e.msg.split()[0] for e in errors) == ["DDDP_HEARTBEAT_TIMEOUT", "DDDP_METHOD_WORKERS"]


def test_an_unknown_dddp_setting_is_w001_listing_the_known_ones() -> None:
    with override_settings(DDDP_FOO=1):
        messages = dddp_messages()

    (warning,) = messages
    assert warning.id == "dddp.W001"
    assert warning.level == checks.WARNING
    assert "DDDP_FOO" in warning.msg
    assert "DDDP_MAX_MESSAGE_SIZE" in warning.hint
    assert "DDDP_HEARTBEAT_INTERVAL" in warning.hint
