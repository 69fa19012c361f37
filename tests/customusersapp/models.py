"""A custom user model, as a project would write one: the email is the username, the key
is a Meteor id, and a field holds whether the email is verified (dddp.accounts)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager
from django.db import models

from dddp.fields import MeteorIdField


class MemberManager(BaseUserManager["Member"]):
    def create_user(self, email: str, password: str | None = None, **fields: Any) -> Member:
        member = self.model(email=self.normalize_email(email), **fields)
        member.set_password(password)
        member.save(using=self._db)
        return member


class Member(AbstractBaseUser):
    id = MeteorIdField(primary_key=True)
    email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=100, blank=True)
    email_verified = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    objects = MemberManager()
