"""Passwords as Meteor clients send them, checked and set with Django's hashers off the loop.

A client sends a password as its digest, `{"digest": <SHA-256 hex>, "algorithm":
"sha-256"}` (Meteor's own client, ddp-login), or as plaintext (asteroid,
simpleddp-plugin-login); A-1. Either is checked against the user's Django hash:
- a hash of `MeteorPBKDF2PasswordHasher` is checked with the digest;
- any other hash (made before that hasher was first in PASSWORD_HASHERS) can be
  checked only with the plaintext, through Django's `check_password`; the hash
  is then rewritten with the first hasher, as Django does at a login.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.hashers import get_hasher, identify_hasher, is_password_usable, make_password

from dddp import cpu_bound
from dddp.accounts.hashers import MeteorPBKDF2PasswordHasher, password_digest
from dddp.protocol.errors import match_failed

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Password:
    """A password as a client gave it: always its digest, and the plaintext if it was sent."""

    digest: str
    plaintext: str | None = None

    def __repr__(self) -> str:  # never in a log
        return "Password(...)"


def parse_password(value: Any) -> Password:
    """A login's or signup's `password` param; 400 Match failed unless it is one of the two forms."""
    if isinstance(value, str):
        if not value:
            raise match_failed("the password is empty")
        return Password(password_digest(value), value)
    if isinstance(value, dict) and set(value) == {"digest", "algorithm"}:
        digest, algorithm = value["digest"], value["algorithm"]
        if algorithm == "sha-256" and isinstance(digest, str) and _HEX_DIGEST.fullmatch(digest):
            return Password(digest.lower())
    raise match_failed('password must be a string or {"digest": <64 hex digits>, "algorithm": "sha-256"}')


def has_password(user: Any) -> bool:
    return bool(user.password) and is_password_usable(user.password)


def check_password(user: Any, password: Password) -> bool:
    """Does `password` match the user's? Hashes off the loop; may rewrite the user's hash."""
    encoded = user.password
    if not has_password(user):
        cpu_bound.run(make_password, password.digest)  # as long as a real check: no timing hint
        return False
    try:
        hasher = identify_hasher(encoded)
    except ValueError:  # a hash of a hasher no longer in PASSWORD_HASHERS
        return False
    preferred = get_hasher()
    if isinstance(hasher, MeteorPBKDF2PasswordHasher):
        if not cpu_bound.run(hasher.verify_digest, password.digest, encoded):
            return False
        if preferred.algorithm == hasher.algorithm and preferred.must_update(encoded):
            _store(user, cpu_bound.run(hasher.make_digest_password, password.digest))  # more rounds
        return True
    if password.plaintext is None:
        return False  # only the plaintext can be checked against this hash
    if not cpu_bound.run(hasher.verify, password.plaintext, encoded):
        return False
    if preferred.algorithm != hasher.algorithm or preferred.must_update(encoded):
        _store(user, cpu_bound.run(make_password, password.plaintext))
    return True


def waste_a_check(password: Password) -> None:
    """The cost of a check, for a login of a user who does not exist (no timing hint)."""
    cpu_bound.run(make_password, password.digest)


def encoded_password(password: Password) -> str:
    """The stored form of a new password: the first hasher's (from the digest if that is all we have)."""
    preferred = get_hasher()
    if password.plaintext is not None:
        return cpu_bound.run(make_password, password.plaintext)
    if isinstance(preferred, MeteorPBKDF2PasswordHasher):
        return cpu_bound.run(preferred.make_digest_password, password.digest)
    meteor_hasher = MeteorPBKDF2PasswordHasher()  # the first hasher cannot take a digest
    return cpu_bound.run(meteor_hasher.make_digest_password, password.digest)


def _store(user: Any, encoded: str) -> None:
    """A rewritten hash of the same password (not a change: no token is revoked)."""
    user.password = encoded
    type(user)._default_manager.filter(pk=user.pk).update(password=encoded)
