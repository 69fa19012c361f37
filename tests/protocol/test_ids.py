"""Unit tests for dddp.protocol.ids: Meteor's Random.id() and Random.secret() (R-4, D-13)."""

from __future__ import annotations

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
