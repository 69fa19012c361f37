"""Email verification (Meteor's `Accounts.sendVerificationEmail` and `verifyEmail`, 4.2).

Django keeps no verification state of its own, so a user model holds it in a
BooleanField named by DDDP_ACCOUNTS_EMAIL_VERIFIED_FIELD (`email_verified`).
Only a model that has it is offered `verifyEmail`; its users' documents then
show the field as `emails[].verified`, live, since verifying saves the user.

The mailed token is the user's id and an HMAC of the address and its verified
state (Django's token generator with a salt of its own), so it stops working
once the address is verified or changed, and after PASSWORD_RESET_TIMEOUT.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from dddp.accounts import mailed_tokens
from dddp.conf import dddp_settings
from dddp.methods import MethodInvocation
from dddp.protocol.errors import match_failed

EXPIRED = "Verify email link expired"  # Meteor's text, for any token that does not work


def verified_field(model: Any) -> str | None:
    """The name of the user model's verification field, when it has an email and that field."""
    name = dddp_settings.ACCOUNTS_EMAIL_VERIFIED_FIELD
    try:
        field = model._meta.get_field(name) if name else None
        model._meta.get_field(model.get_email_field_name())
    except FieldDoesNotExist:
        return None
    return name if isinstance(field, models.BooleanField) else None


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "dddp.accounts.verification.EmailVerificationTokenGenerator"

    def _make_hash_value(self, user: Any, timestamp: int) -> str:
        email = getattr(user, user.get_email_field_name()) or ""
        field = verified_field(type(user))
        return f"{user.pk}{timestamp}{email}{getattr(user, field) if field else ''}"


token_generator = EmailVerificationTokenGenerator()


def verification_token(user: Any) -> str:
    return mailed_tokens.make(user, token_generator)


def send_verification_email(user: Any) -> None:
    """Mail `user` a link (DDDP_VERIFY_EMAIL_URL) or token that verifies their address."""
    if verified_field(type(user)) is None:
        raise ImproperlyConfigured(
            f"{type(user).__name__} has no BooleanField {dddp_settings.ACCOUNTS_EMAIL_VERIFIED_FIELD!r} "
            "(DDDP_ACCOUNTS_EMAIL_VERIFIED_FIELD) to hold whether its email is verified"
        )
    address = getattr(user, user.get_email_field_name())
    if not address:
        raise ValueError(f"user {user.pk} has no email address to verify")
    mailed_tokens.mail(
        address,
        "Verify your email address",
        dddp_settings.VERIFY_EMAIL_URL,
        verification_token(user),
        action="To verify the address of your account",
        otherwise="If you did not make an account, ignore this mail.",
    )


def verify_email(this: MethodInvocation, token: Any) -> dict[str, Any]:
    """`verifyEmail(token)`: the mailed token marks the address verified and logs this
    connection in (Meteor's), answering the login result."""
    from dddp.accounts.login import logged_in, token_refused

    if not isinstance(token, str):
        raise match_failed("the verification token is a string")
    user = mailed_tokens.user_of(token, token_generator)
    if user is None or not user.is_active:
        raise token_refused(this, EXPIRED)
    field = verified_field(get_user_model())
    assert field is not None  # verifyEmail is registered only then
    setattr(user, field, True)
    user.save(update_fields=[field])  # a save, not an update(): clients see emails[].verified change
    return logged_in(this, user, "password")
