"""Meteor-style random ids and secrets (R-4), from the operating system's CSPRNG."""

from __future__ import annotations

import secrets

#: Meteor's `Random.id()` alphabet: no 0/1/I/O/l/V... that read alike (R-4).
UNMISTAKABLE_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
#: Meteor's `Random.secret()` alphabet (R-4).
BASE64_URL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def random_id(length: int = 17) -> str:
    """A `Random.id()`: 17 characters by default, as Meteor's session and sub ids."""
    return "".join(secrets.choice(UNMISTAKABLE_CHARS) for _ in range(length))


def random_secret(length: int = 43) -> str:
    """A `Random.secret()`: 43 characters (about 256 bits), as Meteor's login tokens."""
    return "".join(secrets.choice(BASE64_URL_CHARS) for _ in range(length))
