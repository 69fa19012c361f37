"""Unit tests for dddp.protocol.ids: Meteor's Random.id() and Random.secret() (R-4, D-13)."""

from __future__ import annotations

from collections import Counter

from dddp.protocol.ids import BASE64_URL_CHARS, UNMISTAKABLE_CHARS, random_id, random_secret


def test_unmistakable_alphabet_is_meteors() -> None:
    """Meteor's UNMISTAKABLE_CHARS: 55 characters, no look-alikes."""
    assert UNMISTAKABLE_CHARS == "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
    assert len(set(UNMISTAKABLE_CHARS)) == 55
    assert not set("01IOlUV") & set(UNMISTAKABLE_CHARS)


def test_base64_url_alphabet() -> None:
    assert len(BASE64_URL_CHARS) == len(set(BASE64_URL_CHARS)) == 64
    assert set(BASE64_URL_CHARS) == set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def test_random_id_is_17_chars_from_the_alphabet() -> None:
    """D-13: session ids are 17-char Random.id()s."""
    for _ in range(200):
        value = random_id()
        assert isinstance(value, str)
        assert len(value) == 17
        assert set(value) <= set(UNMISTAKABLE_CHARS)


def test_random_id_differs_between_calls() -> None:
    values = {random_id() for _ in range(1000)}
    assert len(values) == 1000


def test_random_id_uses_the_whole_alphabet() -> None:
    seen = set("".join(random_id() for _ in range(500)))
    assert seen == set(UNMISTAKABLE_CHARS)


def test_random_id_length_argument() -> None:
    assert len(random_id(5)) == 5
    assert len(random_id(30)) == 30
    assert random_id(0) == ""


def test_random_secret_is_43_chars_from_its_alphabet() -> None:
    for _ in range(200):
        value = random_secret()
        assert isinstance(value, str)
        assert len(value) == 43
        assert set(value) <= set(BASE64_URL_CHARS)


def test_random_secret_differs_between_calls() -> None:
    values = {random_secret() for _ in range(1000)}
    assert len(values) == 1000


def test_random_secret_length_argument() -> None:
    assert len(random_secret(10)) == 10


def test_every_character_is_equally_likely() -> None:
    """55 letters do not divide 256: bytes past the last whole round are redrawn, else
    the first 36 letters would come up a quarter more often than the rest."""
    counts = Counter("".join(random_id(100) for _ in range(2_000)))
    assert set(counts) == set(UNMISTAKABLE_CHARS)
    expected = 200_000 / len(UNMISTAKABLE_CHARS)  # about 3,636; one standard deviation is about 60
    assert max(counts.values()) < expected * 1.1 and min(counts.values()) > expected * 0.9
