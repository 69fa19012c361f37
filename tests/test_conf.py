"""dddp.conf: DDDP_* settings with their defaults."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from dddp.conf import DEFAULTS, dddp_settings


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_an_unset_setting_is_its_default(name: str) -> None:
    assert getattr(dddp_settings, name) == DEFAULTS[name][0]


def test_defaults_are_safe_values() -> None:
    assert dddp_settings.MAX_MESSAGE_SIZE == 1024 * 1024
    assert dddp_settings.MAX_SEND_QUEUE_BYTES == 16 * 1024 * 1024
    assert dddp_settings.MAX_SUBSCRIPTIONS == 1000
    assert dddp_settings.HEARTBEAT_INTERVAL == 15.0
    assert dddp_settings.HEARTBEAT_TIMEOUT == 15.0
    assert dddp_settings.METHOD_WORKERS == 8
    assert dddp_settings.SHUTDOWN_TIMEOUT == 10.0


def test_every_default_has_a_meaning() -> None:
    for name, (_default, meaning) in DEFAULTS.items():
        assert meaning.strip(), name


def test_a_project_setting_overrides_the_default_on_each_read() -> None:
    with override_settings(DDDP_METHOD_WORKERS=2, DDDP_HEARTBEAT_INTERVAL=0.2):
        assert dddp_settings.METHOD_WORKERS == 2
        assert dddp_settings.HEARTBEAT_INTERVAL == 0.2
        assert dddp_settings.MAX_MESSAGE_SIZE == 1024 * 1024  # the others keep their defaults

    assert dddp_settings.METHOD_WORKERS == 8  # read again, not cached


def test_pytest_django_settings_fixture_overrides_too(settings: Any) -> None:
    settings.DDDP_SHUTDOWN_TIMEOUT = 1.0

    assert dddp_settings.SHUTDOWN_TIMEOUT == 1.0


@pytest.mark.parametrize("name", ["FOO", "max_message_size", "DDDP_MAX_MESSAGE_SIZE"])
def test_an_unknown_name_is_an_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError, match=f"dddp has no setting named '{name}'"):
        getattr(dddp_settings, name)


def test_an_unknown_name_is_an_attribute_error_even_when_the_project_sets_it() -> None:
    with override_settings(DDDP_FOO=1), pytest.raises(AttributeError):
        dddp_settings.FOO  # noqa: B018
