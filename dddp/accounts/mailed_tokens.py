"""Tokens mailed to a user (password reset, email verification): the user's id and a
token of one of Django's token generators, in one URL-safe string.

Nothing is stored: a generator's token is an HMAC of the user's state (for a
reset, the password's hash; for a verification, the address and whether it is
verified) and a timestamp, so it stops working once that state changes, and
after PASSWORD_RESET_TIMEOUT.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode


def make(user: Any, generator: PasswordResetTokenGenerator) -> str:
    return f"{urlsafe_base64_encode(force_bytes(user.pk))}.{generator.make_token(user)}"


def user_of(token: str, generator: PasswordResetTokenGenerator) -> Any:
    """The user whose token this is, while it works; None for any other string."""
    uid, _, part = token.partition(".")
    try:
        pk = urlsafe_base64_decode(uid).decode()
        user = get_user_model()._default_manager.filter(pk=pk).first()
    except (ValueError, UnicodeDecodeError, ValidationError):
        return None
    if user is None or not generator.check_token(user, part):
        return None
    return user


def mail(address: str, subject: str, link_format: str, token: str, *, action: str, otherwise: str) -> None:
    """Mail `token` (in the link `link_format` makes of it, when set) through Django's email backend."""
    from django.core.mail import send_mail

    link = link_format.format(token=token) if link_format else ""
    body = f"{action}, " + (f"open this link:\n\n{link}\n" if link else f"use this code:\n\n{token}\n")
    send_mail(subject, f"{body}\n{otherwise}\n", None, [address])
