"""dddp.accounts' system checks: the digest hasher in place (E001, W001), and a field to hold
email verification when signups are to be mailed a verification link (E002)."""

from __future__ import annotations

from django.test import override_settings

from dddp.accounts.checks import HASHER, check_email_verification, check_password_hashers

DJANGO_PBKDF2 = "django.contrib.auth.hashers.PBKDF2PasswordHasher"


def test_without_the_meteor_hasher_digests_cannot_be_checked() -> None:
    with override_settings(PASSWORD_HASHERS=[DJANGO_PBKDF2]):
        (error,) = check_password_hashers()
    assert error.id == "dddp.accounts.E001" and HASHER in error.msg


def test_the_meteor_hasher_after_djangos_is_a_warning() -> None:
    with override_settings(PASSWORD_HASHERS=[DJANGO_PBKDF2, HASHER]):
        (warning,) = check_password_hashers()
    assert warning.id == "dddp.accounts.W001"


def test_the_meteor_hasher_first_passes() -> None:
    with override_settings(PASSWORD_HASHERS=[HASHER, DJANGO_PBKDF2]):
        assert check_password_hashers() == []


def test_mailing_verification_links_needs_a_field_on_the_user_model() -> None:
    """Django's User has no `email_verified`: the links could verify nothing."""
    with override_settings(DDDP_ACCOUNTS_SEND_VERIFICATION_EMAIL=True):
        (error,) = check_email_verification()
    assert error.id == "dddp.accounts.E002" and "auth.User" in error.msg and "'email_verified'" in error.msg
    with override_settings(DDDP_ACCOUNTS_SEND_VERIFICATION_EMAIL=False):
        assert check_email_verification() == []
