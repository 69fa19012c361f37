"""System checks of dddp.accounts: a digest can be checked only with its hasher in place, and
an address can be verified only where the user model can hold it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from dddp.accounts.hashers import MeteorPBKDF2PasswordHasher

HASHER = "dddp.accounts.hashers.MeteorPBKDF2PasswordHasher"


def _is_meteor_hasher(path: str) -> bool:
    try:
        return issubclass(import_string(path), MeteorPBKDF2PasswordHasher)
    except ImportError:
        return False


@checks.register(checks.Tags.security)
def check_password_hashers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    hashers = list(settings.PASSWORD_HASHERS)
    if not any(_is_meteor_hasher(path) for path in hashers):
        return [
            checks.Error(
                f"{HASHER} is not in PASSWORD_HASHERS: a Meteor client's password digest "
                "cannot be checked, and passwords set by createUser or changePassword cannot be stored",
                hint=f"Put {HASHER!r} first in PASSWORD_HASHERS, before Django's hashers.",
                id="dddp.accounts.E001",
            )
        ]
    if not _is_meteor_hasher(hashers[0]):
        return [
            checks.Warning(
                f"{HASHER} is not first in PASSWORD_HASHERS: passwords set through Django are "
                "hashed so that a Meteor client's digest cannot be checked against them",
                hint=f"Put {HASHER!r} first in PASSWORD_HASHERS; existing hashes are rewritten at each "
                "user's next login with the password itself (Django's login page, or a plaintext DDP login).",
                id="dddp.accounts.W001",
            )
        ]
    return []


@checks.register()
def check_email_verification(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.contrib.auth import get_user_model

    from dddp.accounts.verification import verified_field
    from dddp.conf import dddp_settings

    model = get_user_model()
    if dddp_settings.ACCOUNTS_SEND_VERIFICATION_EMAIL and verified_field(model) is None:
        return [
            checks.Error(
                "DDDP_ACCOUNTS_SEND_VERIFICATION_EMAIL is on, but the user model "
                f"{model._meta.label} has no email field and BooleanField "
                f"{dddp_settings.ACCOUNTS_EMAIL_VERIFIED_FIELD!r} (DDDP_ACCOUNTS_EMAIL_VERIFIED_FIELD) "
                "to hold whether the address is verified",
                hint="Add such a field to a custom user model, or turn the setting off.",
                id="dddp.accounts.E002",
            )
        ]
    return []
