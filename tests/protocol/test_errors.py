"""Unit tests for dddp.protocol.errors: Meteor.Error on the wire (D-40 to D-43)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dddp.protocol.errors import (
    MeteorError,
    internal_server_error,
    match_failed,
    method_not_found,
    subscription_not_found,
)


def wire(err: MeteorError) -> Any:
    """The error object as a client parses it."""
    return json.loads(json.dumps(err.to_wire()))


def test_int_code_with_reason() -> None:
    """D-40, 1.5 example 1."""
    assert wire(MeteorError(404, "Method 'foo' not found")) == {
        "isClientSafe": True,
        "error": 404,
        "reason": "Method 'foo' not found",
        "message": "Method 'foo' not found [404]",
        "errorType": "Meteor.Error",
    }


def test_string_code_with_reason_and_details() -> None:
    """D-40, 1.5 example 2."""
    assert wire(MeteorError("not-authorized", "You may not", "try logging in")) == {
        "isClientSafe": True,
        "error": "not-authorized",
        "reason": "You may not",
        "details": "try logging in",
        "message": "You may not [not-authorized]",
        "errorType": "Meteor.Error",
    }


def test_without_reason_or_details() -> None:
    """D-40: `message` is "[error]" without a reason; reason/details absent."""
    assert wire(MeteorError("too-many")) == {
        "isClientSafe": True,
        "error": "too-many",
        "message": "[too-many]",
        "errorType": "Meteor.Error",
    }
    assert wire(MeteorError(403)) == {
        "isClientSafe": True,
        "error": 403,
        "message": "[403]",
        "errorType": "Meteor.Error",
    }


def test_details_without_reason() -> None:
    assert wire(MeteorError(400, details={"k": [1, 2]})) == {
        "isClientSafe": True,
        "error": 400,
        "details": {"k": [1, 2]},
        "message": "[400]",
        "errorType": "Meteor.Error",
    }


@pytest.mark.parametrize("details", [0, False, "", [], {}])
def test_falsy_details_are_kept(details: Any) -> None:
    """Only a missing (None) `details` is left out."""
    assert wire(MeteorError(400, "r", details))["details"] == details


def test_empty_reason_is_kept() -> None:
    assert wire(MeteorError(400, "")) == {
        "isClientSafe": True,
        "error": 400,
        "reason": "",
        "message": " [400]",
        "errorType": "Meteor.Error",
    }


@pytest.mark.parametrize(
    ("error", "reason", "message"),
    [
        (404, "Not here", "Not here [404]"),
        ("x", "Why", "Why [x]"),
        (500, None, "[500]"),
        ("code", None, "[code]"),
        (0, None, "[0]"),
        (-1, "neg", "neg [-1]"),
    ],
)
def test_message_format(error: int | str, reason: str | None, message: str) -> None:
    """D-40: `reason + " [" + error + "]"` or `"[" + error + "]"`."""
    err = MeteorError(error, reason)
    assert err.message == message
    assert err.to_wire()["message"] == message
    assert str(err) == message


@pytest.mark.parametrize("code", [404, "not-found"])
def test_required_keys(code: int | str) -> None:
    """D-40: `error` (string or number) and `errorType: "Meteor.Error"`; 3.x adds isClientSafe."""
    out = wire(MeteorError(code, "r"))
    assert out["error"] == code
    assert type(out["error"]) is type(code)
    assert out["errorType"] == "Meteor.Error"
    assert out["isClientSafe"] is True


def test_attributes() -> None:
    err = MeteorError("c", "r", [1])
    assert (err.error, err.reason, err.details) == ("c", "r", [1])


def test_is_an_exception() -> None:
    with pytest.raises(MeteorError) as info:
        raise MeteorError(400, "bad")
    assert info.value.error == 400


def test_to_wire_does_not_share_state() -> None:
    err = MeteorError(400, "r")
    first = err.to_wire()
    first["error"] = 1
    assert err.to_wire()["error"] == 400


def test_equality_by_value() -> None:
    assert MeteorError(404, "x") == MeteorError(404, "x")
    assert MeteorError(404, "x") != MeteorError(404, "y")
    assert MeteorError(404, "x", 1) != MeteorError(404, "x", 2)
    assert MeteorError(404, "x") != MeteorError("404", "x")


def test_method_not_found_is_meteor_3_text() -> None:
    """D-41, D-80: 3.x text "Method '<name>' not found", code 404."""
    assert wire(method_not_found("foo")) == {
        "isClientSafe": True,
        "error": 404,
        "reason": "Method 'foo' not found",
        "message": "Method 'foo' not found [404]",
        "errorType": "Meteor.Error",
    }


def test_subscription_not_found_is_meteor_3_text() -> None:
    """D-41, D-50: 3.x text "Subscription '<name>' not found", code 404."""
    assert wire(subscription_not_found("foo")) == {
        "isClientSafe": True,
        "error": 404,
        "reason": "Subscription 'foo' not found",
        "message": "Subscription 'foo' not found [404]",
        "errorType": "Meteor.Error",
    }


def test_internal_server_error() -> None:
    """D-42: unexpected exceptions are hidden behind a 500."""
    assert wire(internal_server_error()) == {
        "isClientSafe": True,
        "error": 500,
        "reason": "Internal server error",
        "message": "Internal server error [500]",
        "errorType": "Meteor.Error",
    }


def test_match_failed() -> None:
    """D-43: Meteor's check() gives Meteor.Error(400, "Match failed")."""
    assert wire(match_failed()) == {
        "isClientSafe": True,
        "error": 400,
        "reason": "Match failed",
        "message": "Match failed [400]",
        "errorType": "Meteor.Error",
    }


def test_match_failed_with_details() -> None:
    """D-43."""
    out = wire(match_failed("Expected string, got number"))
    assert out["error"] == 400
    assert out["reason"] == "Match failed"
    assert out["details"] == "Expected string, got number"
    assert out["message"] == "Match failed [400]"


@pytest.mark.parametrize("code", [True, False, 1.5, 404.0, None, [404], {"c": 1}, b"x"])
def test_bad_code_is_type_error(code: Any) -> None:
    """D-40: `error` is a string or a number; bool (an int subclass), float, None... are refused."""
    with pytest.raises(TypeError):
        MeteorError(code, "r")
