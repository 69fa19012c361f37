"""MeteorPBKDF2PasswordHasher: a password set through Django checks against a Meteor digest."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.hashers import check_password, make_password

from dddp.accounts.hashers import MeteorPBKDF2PasswordHasher, password_digest


def test_the_digest_is_the_lowercase_hex_sha256_of_the_utf8_password() -> None:
    """A-1, with a non-ASCII password."""
    assert password_digest("pässword") == hashlib.sha256("pässword".encode()).hexdigest()


def test_a_hash_of_the_password_verifies_its_digest_and_the_password() -> None:
    hasher = MeteorPBKDF2PasswordHasher()
    encoded = hasher.encode("correct horse", hasher.salt(), 1000)
    assert encoded.startswith("meteor_pbkdf2_sha256$1000$")
    assert hasher.verify_digest(password_digest("correct horse"), encoded)
    assert hasher.verify("correct horse", encoded)
    assert not hasher.verify_digest(password_digest("wrong"), encoded)
    assert not hasher.verify("wrong", encoded)


def test_a_hash_made_from_a_digest_verifies_the_password() -> None:
    """createUser and changePassword from a Meteor client know only the digest."""
    hasher = MeteorPBKDF2PasswordHasher()
    encoded = hasher.make_digest_password(password_digest("from a browser"))
    assert check_password("from a browser", encoded)


def test_it_is_pbkdf2_of_the_digest() -> None:
    """So an existing PBKDF2 of the digest (a migration from elsewhere) can be adopted as is."""
    hasher = MeteorPBKDF2PasswordHasher()
    digest = password_digest("pw")
    expected = hashlib.pbkdf2_hmac("sha256", digest.encode(), b"saltsalt", 1000)
    import base64

    assert hasher.encode_digest(digest, "saltsalt", 1000).split("$")[3] == base64.b64encode(expected).decode()


def test_djangos_make_password_uses_it_when_it_is_first(settings: pytest.FixtureRequest) -> None:
    settings.PASSWORD_HASHERS = [  # type: ignore[attr-defined]
        "dddp.accounts.hashers.MeteorPBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    encoded = make_password("set in the admin")
    assert encoded.startswith("meteor_pbkdf2_sha256$")
    assert MeteorPBKDF2PasswordHasher().verify_digest(password_digest("set in the admin"), encoded)
