"""Resume tokens: made at a login, stored only hashed, revoked everywhere at once.

A token is Meteor's `Random.secret()`: 43 characters from a 64-letter alphabet
(258 bits), drawn from the system's random source. The database keeps its
`hashed_token`, base64(SHA-256(token)) as Meteor's, so a leaked table logs
nobody in. A token dies with `logout`, `removeOtherTokens`, a password change
(through DDP or anywhere in Django: the admin, `set_password` and `save`), its
user's deletion, and expiry (DDDP_LOGIN_EXPIRATION_DAYS after its login). Each
deleted token's hash is sent with NOTIFY, inside the deleting transaction, and
every dddp server process closes the connections logged in with it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from dddp.changes import REVOKED_TOKENS_CHANNEL
from dddp.conf import dddp_settings
from dddp.methods import current_invocation
from dddp.protocol.random import secure


def hash_token(token: str) -> str:
    return base64.b64encode(hashlib.sha256(token.encode()).digest()).decode()


def lifetime() -> datetime.timedelta:
    return datetime.timedelta(days=float(dddp_settings.LOGIN_EXPIRATION_DAYS))


def expires(when: datetime.datetime) -> datetime.datetime:
    return when + lifetime()


def new_token(user: Any, when: datetime.datetime | None = None) -> tuple[str, Any]:
    """A fresh token for `user` (the string the client gets) and its stored row."""
    from dddp.accounts.models import LoginToken

    token = secure.secret()
    row = LoginToken.objects.create(user=user, hashed_token=hash_token(token), when=when or timezone.now())
    return token, row


def find(token: str) -> Any:
    """The stored row of a token a client sent, or None."""
    from dddp.accounts.models import LoginToken

    return LoginToken.objects.select_related("user").filter(hashed_token=hash_token(token)).first()


def revoke_others(user_id: Any, keep: str | None) -> int:
    """Delete every token of the user but the one hashed `keep`; their connections close."""
    from dddp.accounts.models import LoginToken

    tokens = LoginToken.objects.filter(user_id=user_id)
    if keep is not None:
        tokens = tokens.exclude(hashed_token=keep)
    return int(tokens.delete()[0])


def revoke(hashed_token: str) -> None:
    from dddp.accounts.models import LoginToken

    LoginToken.objects.filter(hashed_token=hashed_token).delete()


def delete_expired() -> int:
    """Delete the tokens past their lifetime (their connections close); returns how many."""
    from dddp.accounts.models import LoginToken

    return int(LoginToken.objects.filter(when__lt=timezone.now() - lifetime()).delete()[0])


def _announce_revoked(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    """A token row is gone (by any means, a cascade too): tell every server process."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [REVOKED_TOKENS_CHANNEL, instance.hashed_token])


def _password_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A saved user whose password was set (`set_password`) loses its other logins.

    The connection changing its own password through DDP keeps its token, as in Meteor.
    """
    if getattr(instance, "_password", None) is None or instance.pk is None:
        return
    this = current_invocation()
    keep = this.login_token if this is not None and this.user_id == instance.pk else None
    revoke_others(instance.pk, keep)


def connect_signals() -> None:
    from dddp.accounts.models import LoginToken

    post_delete.connect(_announce_revoked, sender=LoginToken, dispatch_uid="dddp.accounts.revoked")
    post_save.connect(_password_changed, sender=get_user_model(), dispatch_uid="dddp.accounts.password")
