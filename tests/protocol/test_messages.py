"""Unit tests for the server message builders in dddp.protocol.messages (sections 1.2 to 1.7).

Each builder returns one JSON text; tests compare the parsed object with the exact
wire shape of the spec (key order is not significant). Only `fields` and `result`
carry EJSON (D-3).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from dddp.protocol import ejson, messages
from dddp.protocol.errors import MeteorError

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def parsed(text: str) -> Any:
    assert isinstance(text, str)
    return json.loads(text)


def test_connected() -> None:
    """1.2."""
    assert parsed(messages.connected("AbCdEfGhJkLmNpQrS")) == {
        "msg": "connected",
        "session": "AbCdEfGhJkLmNpQrS",
    }


@pytest.mark.parametrize("version", ["1", "pre2", "pre1"])
def test_failed(version: str) -> None:
    """1.2, D-11, D-12."""
    assert parsed(messages.failed(version)) == {"msg": "failed", "version": version}


def test_ping_without_id() -> None:
    """D-22: server pings carry no id."""
    assert parsed(messages.ping()) == {"msg": "ping"}


def test_ping_with_id() -> None:
    """1.3."""
    assert parsed(messages.ping("x")) == {"msg": "ping", "id": "x"}


def test_pong_without_id() -> None:
    """D-20."""
    assert parsed(messages.pong()) == {"msg": "pong"}


@pytest.mark.parametrize("pong_id", ["abc", "", 0, 12, [1], {"a": "b"}, False])
def test_pong_with_id(pong_id: Any) -> None:
    """D-20: the id is copied whatever its type."""
    assert parsed(messages.pong(pong_id)) == {"msg": "pong", "id": pong_id}


def test_error_without_offending_message() -> None:
    """1.4."""
    assert parsed(messages.error("Bad request")) == {"msg": "error", "reason": "Bad request"}


def test_error_with_offending_message() -> None:
    """1.4, D-30."""
    offending = {"msg": "sub", "id": 1, "name": "x", "params": [{"a": [1, None]}]}
    assert parsed(messages.error("Malformed subscription", offending)) == {
        "msg": "error",
        "reason": "Malformed subscription",
        "offendingMessage": offending,
    }


def test_error_with_empty_offending_message_keeps_it() -> None:
    """Table 1.4: an object without `msg` (even `{}`) is the offendingMessage."""
    assert parsed(messages.error("Bad request", {})) == {
        "msg": "error",
        "reason": "Bad request",
        "offendingMessage": {},
    }


def test_nosub_without_error() -> None:
    """D-53."""
    assert parsed(messages.nosub("sub1")) == {"msg": "nosub", "id": "sub1"}


def test_nosub_with_error() -> None:
    """D-50: unknown publication gives nosub with a 404 Meteor.Error."""
    err = MeteorError(404, "Subscription 'foo' not found")
    assert parsed(messages.nosub("sub1", err)) == {
        "msg": "nosub",
        "id": "sub1",
        "error": {
            "isClientSafe": True,
            "error": 404,
            "reason": "Subscription 'foo' not found",
            "message": "Subscription 'foo' not found [404]",
            "errorType": "Meteor.Error",
        },
    }


def test_nosub_for_odd_unsub_id() -> None:
    """D-32: an unsub id is echoed as given."""
    assert parsed(messages.nosub(None)) == {"msg": "nosub", "id": None}


@pytest.mark.parametrize("subs", [["a"], ["a", "b", "c"], ("x", "y")])
def test_ready(subs: Any) -> None:
    """D-52: several ids may share one ready."""
    assert parsed(messages.ready(subs)) == {"msg": "ready", "subs": list(subs)}


def test_ready_accepts_any_sequence() -> None:
    assert parsed(messages.ready(("a",))) == {"msg": "ready", "subs": ["a"]}


def test_added_with_fields() -> None:
    """1.6."""
    assert parsed(messages.added("books", "1", {"title": "Dune", "pages": 412, "tags": ["sf"]})) == {
        "msg": "added",
        "collection": "books",
        "id": "1",
        "fields": {"title": "Dune", "pages": 412, "tags": ["sf"]},
    }


def test_added_without_fields_omits_fields() -> None:
    """1.6, D-52: fields omitted when empty."""
    assert parsed(messages.added("books", "1", {})) == {"msg": "added", "collection": "books", "id": "1"}


def test_added_fields_are_ejson_encoded() -> None:
    """D-3: `fields` carries EJSON."""
    fields = {"at": EPOCH + dt.timedelta(seconds=1), "blob": b"\x00\x01", "weird": {"$date": 5}}
    assert parsed(messages.added("c", "x", fields)) == {
        "msg": "added",
        "collection": "c",
        "id": "x",
        "fields": {"at": {"$date": 1000}, "blob": {"$binary": "AAE="}, "weird": {"$escape": {"$date": 5}}},
    }


def test_added_keeps_none_false_and_zero_fields() -> None:
    """Falsy values are values, not absent fields."""
    assert parsed(messages.added("c", "x", {"a": None, "b": False, "c": 0, "d": ""}))["fields"] == {
        "a": None,
        "b": False,
        "c": 0,
        "d": "",
    }


def test_changed_with_fields() -> None:
    """1.6, D-57."""
    assert parsed(messages.changed("c", "x", {"a": 1})) == {
        "msg": "changed",
        "collection": "c",
        "id": "x",
        "fields": {"a": 1},
    }


def test_changed_with_cleared() -> None:
    """1.6, D-73."""
    assert parsed(messages.changed("c", "x", {}, ["a", "b"])) == {
        "msg": "changed",
        "collection": "c",
        "id": "x",
        "cleared": ["a", "b"],
    }


def test_changed_with_fields_and_cleared() -> None:
    """1.6, D-74: one changed with updates and clears."""
    assert parsed(messages.changed("c", "x", {"a": EPOCH}, ("b",))) == {
        "msg": "changed",
        "collection": "c",
        "id": "x",
        "fields": {"a": {"$date": 0}},
        "cleared": ["b"],
    }


def test_changed_accepts_cleared_iterator() -> None:
    assert parsed(messages.changed("c", "x", {}, iter(["z"])))["cleared"] == ["z"]


@pytest.mark.parametrize("cleared", [(), [], iter(())])
def test_changed_with_nothing_is_value_error(cleared: Any) -> None:
    """D-58: never send an empty `changed`."""
    with pytest.raises(ValueError):
        messages.changed("c", "x", {}, cleared)


def test_removed() -> None:
    """1.6."""
    assert parsed(messages.removed("c", "x")) == {"msg": "removed", "collection": "c", "id": "x"}


@pytest.mark.parametrize(
    "value",
    [1, "text", [1, 2], {"a": {"b": [None]}}, 0, False, "", [], {}, 1.5, True],
)
def test_result_with_value(value: Any) -> None:
    """1.7: falsy values other than None are real results."""
    assert parsed(messages.result("1", value)) == {"msg": "result", "id": "1", "result": value}


def test_result_with_none_omits_result() -> None:
    """1.7: result omitted when the method returns undefined/None."""
    assert parsed(messages.result("1", None)) == {"msg": "result", "id": "1"}
    assert parsed(messages.result("2")) == {"msg": "result", "id": "2"}


def test_result_is_ejson_encoded() -> None:
    """D-3: `result` carries EJSON (datetime -> $date)."""
    value = {"when": EPOCH + dt.timedelta(milliseconds=1500), "all": [EPOCH], "inf": float("inf")}
    assert parsed(messages.result("1", value)) == {
        "msg": "result",
        "id": "1",
        "result": {"when": {"$date": 1500}, "all": [{"$date": 0}], "inf": {"$InfNaN": 1}},
    }


def test_result_datetime_value() -> None:
    assert parsed(messages.result("1", EPOCH)) == {"msg": "result", "id": "1", "result": {"$date": 0}}


def test_result_error() -> None:
    """1.7, D-80."""
    err = MeteorError("not-authorized", "Nope", {"field": "x"})
    assert parsed(messages.result_error("3", err)) == {
        "msg": "result",
        "id": "3",
        "error": {
            "isClientSafe": True,
            "error": "not-authorized",
            "reason": "Nope",
            "details": {"field": "x"},
            "message": "Nope [not-authorized]",
            "errorType": "Meteor.Error",
        },
    }


def test_result_error_has_no_result_key() -> None:
    assert "result" not in parsed(messages.result_error("1", MeteorError(500)))


@pytest.mark.parametrize("ids", [["1"], ["1", "2"], ("5",)])
def test_updated(ids: Any) -> None:
    """1.7, D-81."""
    assert parsed(messages.updated(ids)) == {"msg": "updated", "methods": list(ids)}


def test_texts_are_compact_single_line_json() -> None:
    """D-1: one JSON object text per message."""
    text = messages.added("c", "x", {"a": "line\nbreak", "b": "ü"})
    assert "\n" not in text
    assert isinstance(json.loads(text), dict)
    assert json.loads(text)["fields"] == {"a": "line\nbreak", "b": "ü"}


@pytest.mark.parametrize(
    ("collection", "doc_id", "fields"),
    [
        ("books", "1", {}),
        ('we"ird\\name', "ü\u2028\x00", {"a": 1.5, "b": [1, "x"], "c": None}),
        ("c", "x", {"nested": {"$date": 5}, "when": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)}),
    ],
    ids=["no fields", "escapes", "ejson"],
)
def test_added_is_the_compact_text_of_its_message(
    collection: str, doc_id: str, fields: dict[str, Any]
) -> None:
    """`added` puts its text together directly: the same text `encode` makes of the message."""
    message: dict[str, Any] = {"msg": "added", "collection": collection, "id": doc_id}
    if fields:
        message["fields"] = ejson.to_json_value(fields)
    assert messages.added(collection, doc_id, fields) == messages.encode(message)
    assert messages.encode(message) == json.dumps(message, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_float_cannot_be_encoded_raw(value: float) -> None:
    """EJSON sends these as $InfNaN; a raw one reaching the encoder is a bug, not `NaN` on the wire."""
    with pytest.raises(ValueError):
        messages.encode({"msg": "result", "id": "1", "result": value})


def test_an_unencodable_value_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        messages.encode({"msg": "result", "id": "1", "result": object()})
