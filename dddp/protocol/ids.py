"""Meteor-style random ids and secrets (R-4), from the operating system's CSPRNG."""

from __future__ import annotations

import secrets

#: Meteor's `Random.id()` alphabet: no 0/1/I/O/l/V... that read alike (R-4).
UNMISTAKABLE_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
#: Meteor's `Random.secret()` alphabet (R-4).
BASE64_URL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def random_id(length: int = 17) -> str:
    """A `Random.id()`: 17 characters by default, as Meteor's session and sub ids."""
    return _draw(UNMISTAKABLE_CHARS, length)


def random_secret(length: int = 43) -> str:
    """A `Random.secret()`: 43 characters (about 256 bits), as Meteor's login tokens."""
    return _draw(BASE64_URL_CHARS, length)


def _draw(alphabet: str, length: int) -> str:
    """`length` characters drawn uniformly from `alphabet`, from one read of the CSPRNG
    (usually): `secrets.choice` reads it once per character, a system call each."""
    size = len(alphabet)
    limit = 256 - 256 % size  # the bytes below this map onto the alphabet evenly
    chars: list[str] = []
    while len(chars) < length:
        for byte in secrets.token_bytes(length - len(chars) + 8):
            if byte < limit:
                chars.append(alphabet[byte % size])
                if len(chars) == length:
                    break
    return "".join(chars)
