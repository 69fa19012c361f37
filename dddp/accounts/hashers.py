"""A Django password hasher that a Meteor client's password digest can be checked against.

A Meteor client never sends the password: it sends its SHA-256 (as lowercase
hex, A-1). Django's hashers hash the password itself, so a digest cannot be
checked against them. `MeteorPBKDF2PasswordHasher` is Django's PBKDF2 hasher
applied to that digest instead: a password set through Django (the admin,
`createsuperuser`, `set_password`) is stored as PBKDF2(SHA-256(password)), and
a login with either the password or its digest is checked against it.

Put it first in PASSWORD_HASHERS and keep Django's hashers after it: hashes
made before are still checked (with a plaintext password: Django's login
pages, or a DDP client sending the plaintext), and Django rewrites each with
this hasher at that login, as it does whenever the first hasher changes. Until
then a user whose hash is of another hasher cannot log in with a digest (which
the Meteor browser client always sends); see docs/accounts.rst.
"""

from __future__ import annotations

import hashlib

from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils.crypto import constant_time_compare


def password_digest(password: str) -> str:
    """What a Meteor client sends for a password: the lowercase hex SHA-256 of its UTF-8 (A-1)."""
    return hashlib.sha256(password.encode()).hexdigest()


class MeteorPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2-SHA256 over the password's SHA-256 hex digest."""

    algorithm = "meteor_pbkdf2_sha256"

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        return self.encode_digest(password_digest(password), salt, iterations)

    def encode_digest(self, digest: str, salt: str, iterations: int | None = None) -> str:
        """The stored form for a password known only by its digest (a Meteor signup, a change)."""
        return super().encode(digest, salt, iterations)

    def verify_digest(self, digest: str, encoded: str) -> bool:
        decoded = self.decode(encoded)
        again = self.encode_digest(digest, str(decoded["salt"]), int(decoded["iterations"]))
        return constant_time_compare(encoded, again)

    def make_digest_password(self, digest: str) -> str:
        return self.encode_digest(digest, self.salt())
