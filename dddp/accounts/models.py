"""What dddp.accounts stores: the hashes of the resume tokens it handed out."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class LoginToken(models.Model):
    """One login of a user: a client holds the token, we keep only its hash (A-3).

    `when` is the time of the login the token comes from; a resumed token and one
    from `getNewToken` keep it, so a token's life is counted from the password login.
    """

    user: models.ForeignKey[Any, Any] = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    user_id: Any
    hashed_token: models.CharField[str, str] = models.CharField(max_length=44, unique=True)  # base64(SHA-256)
    when: models.DateTimeField[Any, Any] = models.DateTimeField()

    class Meta:
        verbose_name = "DDP login token"

    def __str__(self) -> str:
        return f"login of user {self.user_id} at {self.when:%Y-%m-%d %H:%M}"
