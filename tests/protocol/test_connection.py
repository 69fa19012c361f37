"""Unit tests for dddp.protocol.connection: one DDP connection, sans IO.

Data in (`receive(text, now)`, `check_heartbeat(now)`), events and texts out
(`take_outgoing()`). Spec: docs/ddp-protocol.md sections 1.1 to 1.7
(D-1 .. D-88) and the malformed-input table in 1.4. Outgoing texts are compared as
parsed JSON, never as strings (key order is not significant).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest

from dddp.protocol.connection import (
    SUPPORTED_VERSIONS,
    CloseTransport,
    DDPConnection,
    SessionStarted,
    State,
)
from dddp.protocol.ids import UNMISTAKABLE_CHARS
from dddp.protocol.messages import CallMethod, Subscribe, UnrepresentableMessage, Unsubscribe

UTC = dt.timezone.utc

# --- helpers -------------------------------------------------------------------


def send(conn: DDPConnection, message: Any, now: float = 0.0) -> list[Any]:
    """Feed one message (a dict/list/... serialised to JSON, or a raw text)."""
    text = message if isinstance(message, str) else json.dumps(message)
    return conn.receive(text, now)


def outgoing(conn: DDPConnection) -> list[Any]:
    """The connection's queued replies, parsed."""
    return [json.loads(text) for text in conn.take_outgoing()]


def connect_msg(version: Any = "1", support: Any = ("1", "pre2", "pre1"), **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"msg": "connect", "version": version}
    message["support"] = list(support) if isinstance(support, tuple) else support
    message.update(extra)
    return message


def connected_conn(version: str = "1", now: float = 0.0, **kwargs: Any) -> DDPConnection:
    """A connection that negotiated `version` at time `now`, with its queue emptied."""
    conn = DDPConnection(**kwargs)
    events = send(conn, connect_msg(version, [version]), now)
    assert [type(e) for e in events] == [SessionStarted]
    assert outgoing(conn)[0]["msg"] == "connected"
    return conn


def error(reason: str, offending: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"msg": "error", "reason": reason}
    if offending is not None:
        message["offendingMessage"] = offending
    return message


@pytest.fixture
def conn() -> DDPConnection:
    return connected_conn()


# --- version negotiation (D-10 .. D-14) ----------------------------------------


def test_server_versions_in_preference_order() -> None:
    """D-10."""
    assert tuple(SUPPORTED_VERSIONS) == ("1", "pre2", "pre1")


@pytest.mark.parametrize(
    ("version", "support"),
    [
        ("1", ["1", "pre2", "pre1"]),
        ("1", ["1"]),
        ("pre2", ["pre2", "pre1"]),
        ("pre2", ["pre2"]),
        ("pre1", ["pre1"]),
        ("pre1", ["7", "pre1"]),
    ],
)
def test_connect_with_supported_version_starts_session(version: str, support: list[str]) -> None:
    """D-12: the chosen version is the first of the client's `support` we speak."""
    conn = DDPConnection(new_session_id=lambda: "SESSION")
    events = send(conn, connect_msg(version, support))
    assert events == [SessionStarted("SESSION", version)]
    assert outgoing(conn) == [{"msg": "connected", "session": "SESSION"}]
    assert conn.state is State.CONNECTED
    assert conn.version == version
    assert conn.session_id == "SESSION"


def test_connected_session_id_is_fresh_17_char_random_id_each_time() -> None:
    """D-13: each `connected` carries a new 17-char Random.id."""
    seen = set()
    for _ in range(5):
        conn = DDPConnection()
        (event,) = send(conn, connect_msg())
        (reply,) = outgoing(conn)
        session = reply["session"]
        assert reply == {"msg": "connected", "session": session}
        assert isinstance(event, SessionStarted)
        assert event.session_id == session == conn.session_id
        assert len(session) == 17
        assert set(session) <= set(UNMISTAKABLE_CHARS)
        seen.add(session)
    assert len(seen) == 5


def test_connect_session_field_is_ignored() -> None:
    """D-13: Meteor never resumes a session; `session` in `connect` is ignored."""
    conn = DDPConnection()
    (event,) = send(conn, connect_msg(session="PreviousSessionId"))
    (reply,) = outgoing(conn)
    assert reply["msg"] == "connected"
    assert reply["session"] != "PreviousSessionId"
    assert isinstance(event, SessionStarted)
    assert event.session_id == reply["session"]


def test_connect_with_unknown_fields_is_accepted() -> None:
    """D-2: unknown fields in a client message are ignored."""
    conn = DDPConnection(new_session_id=lambda: "S")
    events = send(conn, connect_msg(extra={"a": 1}, future_field=[1, 2]))
    assert events == [SessionStarted("S", "1")]
    assert outgoing(conn) == [{"msg": "connected", "session": "S"}]


def assert_failed(conn: DDPConnection, events: list[Any], version: str) -> None:
    assert outgoing(conn) == [{"msg": "failed", "version": version}]
    assert len(events) == 1
    assert isinstance(events[0], CloseTransport)
    assert conn.state is State.CLOSED
    assert conn.session_id is None


@pytest.mark.parametrize(
    ("version", "support", "expected"),
    [
        # D-12: the client prefers "1", which we speak, but proposed "pre2".
        ("pre2", ["1", "pre2"], "1"),
        # D-12: "2" is unknown to us; the first of support we speak is "1".
        ("2", ["2", "1"], "1"),
        # D-12: nothing in common gives our first version.
        ("2", ["2"], "1"),
        ("pre1", ["pre2", "pre1"], "pre2"),
    ],
)
def test_connect_with_version_other_than_chosen_fails(
    version: str, support: list[str], expected: str
) -> None:
    """D-12: chosen != proposed gives `failed` with the chosen version, then close."""
    conn = DDPConnection()
    events = send(conn, connect_msg(version, support))
    assert_failed(conn, events, expected)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(connect_msg(1, ["1"]), id="version-number"),
        pytest.param(connect_msg(None, ["1"]), id="version-null"),
        pytest.param(connect_msg(["1"], ["1"]), id="version-array"),
        pytest.param({"msg": "connect", "support": ["1"]}, id="version-missing"),
        pytest.param(connect_msg("1", "1"), id="support-string"),
        pytest.param(connect_msg("1", {"0": "1"}), id="support-object"),
        pytest.param(connect_msg("1", None), id="support-null"),
        pytest.param({"msg": "connect", "version": "1"}, id="support-missing"),
        pytest.param(connect_msg("1", ["1", 2]), id="support-with-number"),
        pytest.param(connect_msg("1", ["1", None]), id="support-with-null"),
        pytest.param(connect_msg("1", ["pre2", "pre1"]), id="version-not-in-support"),
        pytest.param(connect_msg("1", []), id="support-empty"),
    ],
)
def test_invalid_connect_fails_with_version_1(message: dict[str, Any]) -> None:
    """D-11: string `version`, array-of-strings `support` containing it, else `failed "1"`."""
    conn = DDPConnection()
    events = send(conn, message)
    assert_failed(conn, events, "1")


@pytest.mark.parametrize(
    "later",
    [
        connect_msg(),
        {"msg": "ping"},
        {"msg": "ping", "id": "x"},
        {"msg": "sub", "id": "a", "name": "things"},
        {"msg": "method", "id": "1", "method": "foo", "params": []},
        {"msg": "unsub", "id": "a"},
        {"msg": "bogus"},
        {"no": "msg"},
        "not json",
        "[1, 2]",
    ],
)
def test_messages_after_failed_are_ignored(later: Any) -> None:
    """D-14: a client may pipeline messages after `connect`; after `failed` they are dropped."""
    conn = DDPConnection()
    send(conn, connect_msg("2", ["2", "1"]))
    conn.take_outgoing()
    assert send(conn, later, 1.0) == []
    assert conn.take_outgoing() == []
    assert conn.state is State.CLOSED


def test_messages_after_failed_do_not_trigger_heartbeat() -> None:
    """D-14, D-22: a failed connection has no heartbeat."""
    conn = DDPConnection(heartbeat_interval=1, heartbeat_timeout=1)
    send(conn, connect_msg("2", ["2", "1"]))
    conn.take_outgoing()
    for now in (0.5, 1, 2, 5, 100):
        assert conn.check_heartbeat(now) == []
    assert conn.take_outgoing() == []


def test_messages_after_close_are_ignored(conn: DDPConnection) -> None:
    """`close()` marks the transport gone: later input gets no reply and no event."""
    conn.close()
    assert send(conn, {"msg": "ping"}) == []
    assert send(conn, {"msg": "sub", "id": "a", "name": "x"}) == []
    assert conn.take_outgoing() == []


# --- connect first / connect once (D-15) ---------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"msg": "ping"},
        {"msg": "ping", "id": "p"},
        {"msg": "pong"},
        {"msg": "sub", "id": "a", "name": "things", "params": []},
        {"msg": "unsub", "id": "a"},
        {"msg": "method", "id": "1", "method": "foo", "params": []},
        {"msg": "bogus", "x": [1]},
        {"msg": "sub", "id": 5},  # malformed, but the session check comes first
    ],
)
def test_message_before_connect_is_must_connect_first(message: dict[str, Any]) -> None:
    """D-15: anything but `connect` before the session: error with offendingMessage; stays open."""
    conn = DDPConnection()
    assert send(conn, message) == []
    assert outgoing(conn) == [error("Must connect first", message)]
    assert conn.state is State.AWAITING_CONNECT
    # The socket stays usable: connecting afterwards works (D-30).
    assert [type(e) for e in send(conn, connect_msg())] == [SessionStarted]
    assert outgoing(conn)[0]["msg"] == "connected"


def test_second_connect_is_already_connected(conn: DDPConnection) -> None:
    """D-15: a second `connect` on an established socket."""
    session = conn.session_id
    message = connect_msg()
    assert send(conn, message) == []
    assert outgoing(conn) == [error("Already connected", message)]
    assert conn.state is State.CONNECTED
    assert conn.session_id == session


def test_second_invalid_connect_is_already_connected_not_failed(conn: DDPConnection) -> None:
    """D-15: the Already-connected check comes before version validation."""
    message = connect_msg("2", ["2"])
    assert send(conn, message) == []
    assert outgoing(conn) == [error("Already connected", message)]
    assert conn.state is State.CONNECTED


# --- ping / pong (D-20, D-24, D-16) --------------------------------------------


def test_ping_without_id_gets_pong_without_id(conn: DDPConnection) -> None:
    """D-20: copy `id` if and only if present."""
    assert send(conn, {"msg": "ping"}) == []
    assert outgoing(conn) == [{"msg": "pong"}]


def test_ping_with_id_gets_pong_with_same_id(conn: DDPConnection) -> None:
    """D-20."""
    assert send(conn, {"msg": "ping", "id": "abc"}) == []
    assert outgoing(conn) == [{"msg": "pong", "id": "abc"}]


@pytest.mark.parametrize(
    "ping_id",
    [0, 42, 1.5, True, False, "", [1, "a"], {"k": "v"}, None],
    ids=["zero", "int", "float", "true", "false", "empty-string", "array", "object", "null"],
)
def test_ping_with_id_of_any_json_type_gets_it_copied(conn: DDPConnection, ping_id: Any) -> None:
    """D-20: `id` is copied whatever its JSON type, as long as it is present (null included)."""
    assert send(conn, {"msg": "ping", "id": ping_id}) == []
    assert outgoing(conn) == [{"msg": "pong", "id": ping_id}]


def test_ping_ignores_unknown_fields(conn: DDPConnection) -> None:
    """D-2."""
    assert send(conn, {"msg": "ping", "id": "1", "extra": True}) == []
    assert outgoing(conn) == [{"msg": "pong", "id": "1"}]


@pytest.mark.parametrize("message", [{"msg": "pong"}, {"msg": "pong", "id": "x"}, {"msg": "pong", "id": 3}])
def test_pong_gets_no_reply(conn: DDPConnection, message: dict[str, Any]) -> None:
    """D-24."""
    assert send(conn, message) == []
    assert conn.take_outgoing() == []


def test_pre2_answers_pings() -> None:
    """D-16: `pre2` added ping/pong."""
    conn = connected_conn("pre2")
    assert send(conn, {"msg": "ping", "id": "a"}) == []
    assert outgoing(conn) == [{"msg": "pong", "id": "a"}]


@pytest.mark.parametrize("message", [{"msg": "ping"}, {"msg": "ping", "id": "a"}, {"msg": "pong"}])
def test_pre1_ping_and_pong_are_bad_request(message: dict[str, Any]) -> None:
    """D-16: `pre1` has no ping/pong; they are unknown messages."""
    conn = connected_conn("pre1")
    assert send(conn, message) == []
    assert outgoing(conn) == [error("Bad request", message)]


def test_ping_is_answered_at_once_even_behind_a_pending_method(conn: DDPConnection) -> None:
    """D-20: a ping is answered at once, in the same `take_outgoing()`, even between requests."""
    assert [type(e) for e in send(conn, {"msg": "method", "id": "1", "method": "slow"})] == [CallMethod]
    assert send(conn, {"msg": "ping", "id": "p"}) == []
    assert outgoing(conn) == [{"msg": "pong", "id": "p"}]


# --- heartbeat (D-21, D-22) with a fake clock -----------------------------------


def hb_conn(version: str = "1", interval: float = 15.0, timeout: float = 15.0) -> DDPConnection:
    return connected_conn(version, now=0.0, heartbeat_interval=interval, heartbeat_timeout=timeout)


def test_heartbeat_defaults_are_meteors() -> None:
    """D-22: 15000 ms interval and timeout."""
    conn = DDPConnection()
    assert conn.heartbeat_interval == 15.0
    assert conn.heartbeat_timeout == 15.0


def test_no_ping_before_interval() -> None:
    """D-22."""
    conn = hb_conn()
    for now in (0.0, 1.0, 10.0, 14.9):
        assert conn.check_heartbeat(now) == []
    assert conn.take_outgoing() == []


def test_ping_after_interval_of_silence() -> None:
    """D-22: a ping without id after `heartbeatInterval` with nothing received."""
    conn = hb_conn()
    assert conn.check_heartbeat(15.0) == []
    assert outgoing(conn) == [{"msg": "ping"}]


def test_only_one_ping_outstanding() -> None:
    """D-22: no second ping while one is outstanding."""
    conn = hb_conn()
    conn.check_heartbeat(15.0)
    assert outgoing(conn) == [{"msg": "ping"}]
    for now in (16.0, 20.0, 29.9):
        assert conn.check_heartbeat(now) == []
    assert conn.take_outgoing() == []


@pytest.mark.parametrize(
    "message",
    [
        {"msg": "pong"},
        {"msg": "ping"},
        {"msg": "sub", "id": "a", "name": "x"},
        {"msg": "bogus"},
        "not json",
    ],
    ids=["pong", "ping", "sub", "unknown-msg", "bad-json"],
)
def test_any_received_message_resets_the_interval(message: Any) -> None:
    """D-21: every received message, even an invalid one, counts as liveness."""
    conn = hb_conn()
    send(conn, message, now=10.0)
    conn.take_outgoing()
    assert conn.check_heartbeat(15.0) == []
    assert conn.check_heartbeat(24.9) == []
    assert conn.take_outgoing() == []
    assert conn.check_heartbeat(25.0) == []
    assert outgoing(conn) == [{"msg": "ping"}]


def test_close_after_timeout_without_reply() -> None:
    """D-22: nothing received within `heartbeatTimeout` of the ping closes the session."""
    conn = hb_conn()
    conn.check_heartbeat(15.0)
    assert outgoing(conn) == [{"msg": "ping"}]
    assert conn.check_heartbeat(29.9) == []
    events = conn.check_heartbeat(30.0)
    assert len(events) == 1
    assert isinstance(events[0], CloseTransport)
    assert conn.state is State.CLOSED
    assert conn.take_outgoing() == []
    # Closed for good: no further events, input ignored.
    assert conn.check_heartbeat(100.0) == []
    assert send(conn, {"msg": "ping"}, 101.0) == []
    assert conn.take_outgoing() == []


@pytest.mark.parametrize(
    "reply",
    [{"msg": "pong"}, {"msg": "method", "id": "1", "method": "m"}, {"msg": "bogus"}],
    ids=["pong", "method", "unknown-msg"],
)
def test_no_close_when_client_replied(reply: dict[str, Any]) -> None:
    """D-21, D-22: anything received after the ping answers it."""
    conn = hb_conn()
    conn.check_heartbeat(15.0)
    assert outgoing(conn) == [{"msg": "ping"}]
    send(conn, reply, now=20.0)
    conn.take_outgoing()
    assert conn.check_heartbeat(30.0) == []
    assert conn.check_heartbeat(34.9) == []
    assert conn.state is State.CONNECTED
    assert conn.take_outgoing() == []
    # A new interval of silence since the reply gives a new ping.
    assert conn.check_heartbeat(35.0) == []
    assert outgoing(conn) == [{"msg": "ping"}]


def test_reply_then_silence_pings_and_times_out_again() -> None:
    """D-22: the cycle repeats."""
    conn = hb_conn(interval=10, timeout=5)
    conn.check_heartbeat(10.0)
    assert outgoing(conn) == [{"msg": "ping"}]
    send(conn, {"msg": "pong"}, now=12.0)
    assert conn.check_heartbeat(22.0) == []
    assert outgoing(conn) == [{"msg": "ping"}]
    assert conn.check_heartbeat(26.9) == []
    assert [type(e) for e in conn.check_heartbeat(27.0)] == [CloseTransport]


def test_interval_zero_disables_heartbeat() -> None:
    """D-22: `heartbeatInterval` 0 disables."""
    conn = hb_conn(interval=0)
    for now in (0.0, 15.0, 30.0, 1000.0, 100000.0):
        assert conn.check_heartbeat(now) == []
    assert conn.take_outgoing() == []
    assert conn.state is State.CONNECTED


def test_pre1_has_no_heartbeat() -> None:
    """D-16, D-22: no heartbeat timers for `pre1`."""
    conn = hb_conn("pre1")
    for now in (15.0, 30.0, 1000.0):
        assert conn.check_heartbeat(now) == []
    assert conn.take_outgoing() == []
    assert conn.state is State.CONNECTED


def test_no_heartbeat_before_connect() -> None:
    """D-22: the heartbeat belongs to a session."""
    conn = DDPConnection(heartbeat_interval=1, heartbeat_timeout=1)
    for now in (0.0, 5.0, 100.0):
        assert conn.check_heartbeat(now) == []
    # Even after some pre-connect traffic.
    send(conn, {"msg": "ping"}, now=100.0)
    conn.take_outgoing()
    for now in (101.0, 200.0):
        assert conn.check_heartbeat(now) == []
    assert conn.take_outgoing() == []
    assert conn.state is State.AWAITING_CONNECT


def test_heartbeat_interval_counts_from_connect() -> None:
    """D-22: the first interval starts when the session does."""
    conn = DDPConnection(heartbeat_interval=15, heartbeat_timeout=15)
    send(conn, connect_msg(), now=100.0)
    conn.take_outgoing()
    assert conn.check_heartbeat(114.9) == []
    assert conn.take_outgoing() == []
    conn.check_heartbeat(115.0)
    assert outgoing(conn) == [{"msg": "ping"}]


# --- malformed input: every row of table 1.4 (D-30) ----------------------------


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{",
        "",
        '{"msg": "ping"',
        "[]",
        '["msg", "ping"]',
        '[{"msg": "ping"}]',
        '"ping"',
        '"{\\"msg\\":\\"ping\\"}"',
        "42",
        "null",
        "true",
        "NaN",
        "Infinity",
        "-Infinity",
        '{"msg": "method", "id": "1", "method": "m", "params": [NaN]}',
    ],
)
@pytest.mark.parametrize("connected", [False, True], ids=["before-connect", "after-connect"])
def test_text_that_is_not_a_json_object_is_bad_request_without_offending_message(
    text: str, connected: bool
) -> None:
    """Table 1.4 row 1: not JSON, or JSON but not an object: "Bad request", no offendingMessage."""
    conn = connected_conn() if connected else DDPConnection()
    assert conn.receive(text, 0.0) == []
    assert outgoing(conn) == [{"msg": "error", "reason": "Bad request"}]
    assert conn.state is (State.CONNECTED if connected else State.AWAITING_CONNECT)  # D-30: stays open


@pytest.mark.parametrize(
    "message",
    [
        {"msg": "method", "id": "1", "method": "m", "params": [{"$type": "NoSuchType", "$value": 1}]},
        {"msg": "sub", "id": "a", "name": "x", "params": [{"$type": "NoSuchType", "$value": {}}]},
        {"msg": "method", "id": "1", "method": "m", "params": [{"$date": "yesterday"}]},
        {"msg": "method", "id": "1", "method": "m", "params": [{"nested": {"$binary": "!!not base64"}}]},
    ],
    ids=["method-unknown-type", "sub-unknown-type", "bad-date", "bad-binary"],
)
@pytest.mark.parametrize("connected", [False, True], ids=["before-connect", "after-connect"])
def test_params_failing_ejson_decoding_is_parse_error_without_offending_message(
    message: dict[str, Any], connected: bool
) -> None:
    """Table 1.4 row 2: EJSON decoding of `params` throws: "Parse error", no offendingMessage."""
    conn = connected_conn() if connected else DDPConnection()
    assert send(conn, message) == []
    assert outgoing(conn) == [{"msg": "error", "reason": "Parse error"}]


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"id": "1", "method": "foo"},
        {"msg": ""},
        {"msg": None},
        {"msg": 0},
        {"msg": False},
        {"MSG": "connect", "version": "1", "support": ["1"]},
    ],
    ids=["empty", "no-msg", "msg-empty", "msg-null", "msg-zero", "msg-false", "wrong-case-key"],
)
@pytest.mark.parametrize("connected", [False, True], ids=["before-connect", "after-connect"])
def test_object_without_msg_is_bad_request_with_offending_message(
    message: dict[str, Any], connected: bool
) -> None:
    """Table 1.4 row 3: object without (a truthy) `msg`: "Bad request" with the object."""
    conn = connected_conn() if connected else DDPConnection()
    assert send(conn, message) == []
    assert outgoing(conn) == [error("Bad request", message)]


@pytest.mark.parametrize(
    "message",
    [
        {"msg": "bogus"},
        {"msg": "connected", "session": "x"},
        {"msg": "result", "id": "1", "result": 1},
        {"msg": "Ping"},
        {"msg": "addedBefore", "collection": "c", "id": "x", "before": None},
        {"msg": 5},
        {"msg": ["sub"], "id": "a", "name": "x"},
    ],
    ids=["bogus", "connected", "result", "wrong-case", "addedBefore", "msg-number", "msg-array"],
)
def test_unknown_msg_after_connect_is_bad_request_with_offending_message(
    conn: DDPConnection, message: dict[str, Any]
) -> None:
    """Table 1.4 row 4: `msg` not known after connect."""
    assert send(conn, message) == []
    assert outgoing(conn) == [error("Bad request", message)]
    assert conn.state is State.CONNECTED


# Table 1.4 rows 5 to 7 (pre1 ping/pong, Must connect first, Already connected) are above.


@pytest.mark.parametrize(
    "message",
    [
        {"msg": "sub", "name": "things"},
        {"msg": "sub", "id": 1, "name": "things"},
        {"msg": "sub", "id": None, "name": "things"},
        {"msg": "sub", "id": ["a"], "name": "things"},
        {"msg": "sub", "id": "a"},
        {"msg": "sub", "id": "a", "name": 7},
        {"msg": "sub", "id": "a", "name": None},
        {"msg": "sub", "id": "a", "name": {"n": "things"}},
        {"msg": "sub", "id": "a", "name": "things", "params": {"0": 1}},
        {"msg": "sub", "id": "a", "name": "things", "params": "x"},
        {"msg": "sub", "id": "a", "name": "things", "params": 1},
        {"msg": "sub", "id": "a", "name": "things", "params": None},
        {"msg": "sub", "id": "a", "name": "things", "params": {"$date": 0}},
    ],
    ids=[
        "id-missing",
        "numeric-id",
        "null-id",
        "array-id",
        "name-missing",
        "numeric-name",
        "null-name",
        "object-name",
        "params-object",
        "params-string",
        "params-number",
        "params-null",
        "params-ejson-date",
    ],
)
def test_sub_with_bad_id_name_or_params_is_malformed_subscription(
    conn: DDPConnection, message: dict[str, Any]
) -> None:
    """Table 1.4 row 8: non-string `id`/`name`, or `params` present but not an array."""
    assert send(conn, message) == []
    assert outgoing(conn) == [error("Malformed subscription", message)]


def test_sub_with_numeric_id_is_malformed_subscription(conn: DDPConnection) -> None:
    """Table 1.4 row 8 (the common case, spelled out)."""
    message = {"msg": "sub", "id": 1, "name": "things", "params": []}
    assert send(conn, message) == []
    assert outgoing(conn) == [
        {"msg": "error", "reason": "Malformed subscription", "offendingMessage": message}
    ]


@pytest.mark.parametrize(
    "message",
    [
        {"msg": "method", "method": "foo"},
        {"msg": "method", "id": 1, "method": "foo"},
        {"msg": "method", "id": None, "method": "foo"},
        {"msg": "method", "id": "1"},
        {"msg": "method", "id": "1", "method": 3},
        {"msg": "method", "id": "1", "method": None},
        {"msg": "method", "id": "1", "name": "foo"},
        {"msg": "method", "id": "1", "method": "foo", "params": {"a": 1}},
        {"msg": "method", "id": "1", "method": "foo", "params": "a"},
        {"msg": "method", "id": "1", "method": "foo", "params": None},
        {"msg": "method", "id": "1", "method": "foo", "params": [], "randomSeed": 5},
        {"msg": "method", "id": "1", "method": "foo", "params": [], "randomSeed": None},
        {"msg": "method", "id": "1", "method": "foo", "params": [], "randomSeed": ["s"]},
    ],
    ids=[
        "id-missing",
        "numeric-id",
        "null-id",
        "method-missing",
        "numeric-method",
        "null-method",
        "name-instead-of-method",
        "params-object",
        "params-string",
        "params-null",
        "numeric-randomSeed",
        "null-randomSeed",
        "array-randomSeed",
    ],
)
def test_method_with_bad_fields_is_malformed_method_invocation(
    conn: DDPConnection, message: dict[str, Any]
) -> None:
    """Table 1.4 row 9, D-85: non-string `id`/`method`, non-array `params`, non-string `randomSeed`."""
    assert send(conn, message) == []
    assert outgoing(conn) == [error("Malformed method invocation", message)]


def test_socket_stays_usable_after_errors(conn: DDPConnection) -> None:
    """D-30: an `error` does not close the connection."""
    send(conn, "garbage")
    send(conn, {"msg": "sub", "id": 1, "name": "x"})
    send(conn, {"msg": "method", "id": 1, "method": "x"})
    assert [m["reason"] for m in outgoing(conn)] == [
        "Bad request",
        "Malformed subscription",
        "Malformed method invocation",
    ]
    assert conn.state is State.CONNECTED
    assert send(conn, {"msg": "sub", "id": "a", "name": "x"}) == [Subscribe("a", "x", [])]
    assert send(conn, {"msg": "ping"}) == []
    assert outgoing(conn) == [{"msg": "pong"}]


# --- sub / unsub / method events (D-31, D-32, D-85, D-2, D-3) ------------------


def test_sub_gives_subscribe_event_and_no_reply(conn: DDPConnection) -> None:
    """1.6: the application handles `sub`; the protocol sends nothing itself."""
    events = send(conn, {"msg": "sub", "id": "a", "name": "things", "params": [1, "two", [3]]})
    assert events == [Subscribe("a", "things", [1, "two", [3]])]
    assert conn.take_outgoing() == []


def test_sub_without_params_has_empty_params(conn: DDPConnection) -> None:
    """D-31: a missing `params` is treated as []."""
    assert send(conn, {"msg": "sub", "id": "a", "name": "things"}) == [Subscribe("a", "things", [])]
    assert conn.take_outgoing() == []


def test_sub_ignores_unknown_fields(conn: DDPConnection) -> None:
    """D-2."""
    events = send(conn, {"msg": "sub", "id": "a", "name": "t", "params": [], "x": 1, "randomSeed": 2})
    assert events == [Subscribe("a", "t", [])]
    assert conn.take_outgoing() == []


def test_sub_params_are_ejson_decoded(conn: DDPConnection) -> None:
    """D-3: `params` carries EJSON; the event holds Python values."""
    (event,) = send(
        conn,
        {
            "msg": "sub",
            "id": "a",
            "name": "t",
            "params": [{"$date": 0}, {"$binary": "AAE="}, {"k": {"$date": 1000}}],
        },
    )
    assert isinstance(event, Subscribe)
    when, blob, nested = event.params
    assert when == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert isinstance(when, dt.datetime)
    assert blob == b"\x00\x01"
    assert nested == {"k": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)}


def test_method_gives_call_method_event(conn: DDPConnection) -> None:
    """1.7, D-85: `randomSeed` is exposed."""
    events = send(conn, {"msg": "method", "id": "1", "method": "add", "params": [1, 2], "randomSeed": "seed"})
    assert events == [CallMethod("1", "add", [1, 2], "seed")]
    assert conn.take_outgoing() == []


def test_method_without_params_or_seed(conn: DDPConnection) -> None:
    """D-31, D-85: `params` and `randomSeed` are optional."""
    assert send(conn, {"msg": "method", "id": "7", "method": "noop"}) == [CallMethod("7", "noop", [], None)]
    assert conn.take_outgoing() == []


def test_method_with_empty_string_seed_is_accepted(conn: DDPConnection) -> None:
    """D-85: any string seed is accepted."""
    assert send(conn, {"msg": "method", "id": "1", "method": "m", "randomSeed": ""}) == [
        CallMethod("1", "m", [], "")
    ]


def test_method_ignores_unknown_fields(conn: DDPConnection) -> None:
    """D-2."""
    events = send(conn, {"msg": "method", "id": "1", "method": "m", "params": [], "name": "other", "z": {}})
    assert events == [CallMethod("1", "m", [], None)]


def test_method_params_are_ejson_decoded(conn: DDPConnection) -> None:
    """D-3: {"$date": 0} becomes a datetime; escaped objects are unescaped."""
    (event,) = send(
        conn,
        {
            "msg": "method",
            "id": "1",
            "method": "m",
            "params": [{"$date": 0}, {"$InfNaN": 1}, {"$escape": {"$date": 5}}],
        },
    )
    assert isinstance(event, CallMethod)
    assert event.params[0] == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert event.params[1] == float("inf")
    assert event.params[2] == {"$date": 5}


def test_only_params_are_ejson_decoded_id_stays_plain(conn: DDPConnection) -> None:
    """D-3: the method name and id are plain JSON, never EJSON-decoded."""
    events = send(conn, {"msg": "method", "id": "$date", "method": '{"$date": 0}', "params": []})
    assert events == [CallMethod("$date", '{"$date": 0}', [], None)]


@pytest.mark.parametrize("sub_id", ["a", "never-subscribed", "", 5, None, {"x": 1}, ["a"]])
def test_unsub_with_any_id_gives_unsubscribe_event(conn: DDPConnection, sub_id: Any) -> None:
    """D-32: `unsub` is not validated; an unknown (or odd) id still yields an Unsubscribe."""
    assert send(conn, {"msg": "unsub", "id": sub_id}) == [Unsubscribe(sub_id)]
    assert conn.take_outgoing() == []


def test_unsub_without_id_gives_unsubscribe_event(conn: DDPConnection) -> None:
    """D-32."""
    assert send(conn, {"msg": "unsub"}) == [Unsubscribe(None)]
    assert conn.take_outgoing() == []


def test_requests_come_out_in_order(conn: DDPConnection) -> None:
    """D-84: messages from one session are handled in order, one event per request."""
    events: list[Any] = []
    for message in (
        {"msg": "sub", "id": "s1", "name": "a"},
        {"msg": "method", "id": "1", "method": "m"},
        {"msg": "unsub", "id": "s1"},
        {"msg": "method", "id": "2", "method": "n", "params": [True]},
    ):
        events.extend(send(conn, message))
    assert events == [
        Subscribe("s1", "a", []),
        CallMethod("1", "m", [], None),
        Unsubscribe("s1"),
        CallMethod("2", "n", [True], None),
    ]


def test_non_ascii_text_round_trips(conn: DDPConnection) -> None:
    """D-1: a frame is JSON text; non-ASCII survives."""
    events = send(conn, json.dumps({"msg": "method", "id": "1", "method": "grüß", "params": ["日本"]}))
    assert events == [CallMethod("1", "grüß", ["日本"], None)]


def test_pipelined_connect_then_requests() -> None:
    """D-14 (success case): messages pipelined after a good `connect` are handled."""
    conn = DDPConnection(new_session_id=lambda: "S")
    events: list[Any] = []
    for message in (connect_msg(), {"msg": "sub", "id": "a", "name": "x"}, {"msg": "ping", "id": "p"}):
        events.extend(send(conn, message))
    assert events == [SessionStarted("S", "1"), Subscribe("a", "x", [])]
    assert outgoing(conn) == [{"msg": "connected", "session": "S"}, {"msg": "pong", "id": "p"}]


# --- messages no reply could carry (issue 9, attack 7) ---------------------------

UNANSWERABLE = UnrepresentableMessage.DETAILS


def bad_request_400() -> dict[str, Any]:
    return {
        "isClientSafe": True,
        "error": 400,
        "reason": "Bad request",
        "details": UNANSWERABLE,
        "message": "Bad request [400]",
        "errorType": "Meteor.Error",
    }


@pytest.mark.parametrize(
    "params", ["[1e999]", "[-1E+400]", '["\\ud800"]', '[{"a": "x\\udfff"}]', "[" + "9" * 400 + ".5]"]
)
def test_a_method_whose_params_no_reply_could_carry_gets_a_400_result_and_updated(
    conn: DDPConnection, params: str
) -> None:
    """Its value cannot be encoded back (allow_nan, UTF-8): without this it got no reply."""
    assert conn.receive(f'{{"msg":"method","id":"m","method":"echo","params":{params}}}', 1.0) == []
    assert outgoing(conn) == [
        {"msg": "result", "id": "m", "error": bad_request_400()},
        {"msg": "updated", "methods": ["m"]},
    ]


def test_a_lone_surrogate_already_decoded_is_caught_too(conn: DDPConnection) -> None:
    """SockJS frames carry the DDP text as a JSON string: its escapes arrive decoded."""
    conn.receive('{"msg":"method","id":"m","method":"echo","params":["\ud800"]}', 1.0)
    assert [m["msg"] for m in outgoing(conn)] == ["result", "updated"]


def test_a_sub_whose_params_no_reply_could_carry_gets_a_400_nosub(conn: DDPConnection) -> None:
    assert conn.receive('{"msg":"sub","id":"s","name":"Books","params":["\\ud800"]}', 1.0) == []
    assert outgoing(conn) == [{"msg": "nosub", "id": "s", "error": bad_request_400()}]


@pytest.mark.parametrize(
    "text",
    [
        '{"msg":"ping","id":1e999}',
        '{"msg":"ping","id":"\\ud800"}',
        '{"msg":"method","id":"\\udc00","method":"echo"}',
        '{"msg":"unknown","x":1e999}',
        "[1e999]",
    ],
)
def test_any_other_such_message_gets_a_bad_request_error_without_echoing_it(
    conn: DDPConnection, text: str
) -> None:
    assert conn.receive(text, 1.0) == []
    assert outgoing(conn) == [error("Bad request")]


def test_before_connect_such_a_method_gets_an_error_not_a_result() -> None:
    fresh = DDPConnection()
    fresh.receive('{"msg":"method","id":"m","method":"echo","params":[1e999]}', 0.0)
    assert outgoing(fresh) == [error("Bad request")]


def test_paired_surrogates_and_integers_beyond_a_float_are_ordinary(conn: DDPConnection) -> None:
    big = "9" * 400
    events = conn.receive(
        f'{{"msg":"method","id":"m","method":"echo","params":["\\ud83d\\ude00",{big},1e300]}}', 1
    )
    assert [type(e) for e in events] == [CallMethod]
    assert events[0].params == ["\U0001f600", math.inf, 1e300]  # what JS would see (EJSON-encodable)
    conn.receive('{"msg":"ping","id":"\\ud83d\\ude00"}', 1)
    assert outgoing(conn) == [{"msg": "pong", "id": "\U0001f600"}]


# --- the size of params (issue 9, attack 3) ----------------------------------------


def test_a_sub_whose_params_are_over_the_limit_gets_a_413_nosub() -> None:
    conn = connected_conn(max_params_size=100)
    send(conn, {"msg": "sub", "id": "s", "name": "Books", "params": ["x" * 200]}, 1.0)
    (nosub,) = outgoing(conn)
    assert (nosub["msg"], nosub["id"], nosub["error"]["error"]) == ("nosub", "s", 413)
    assert nosub["error"]["details"] == "204 characters of JSON; the limit is 100"


def test_a_method_whose_params_are_over_the_limit_gets_a_413_result_and_updated() -> None:
    conn = connected_conn(max_params_size=100)
    send(conn, {"msg": "method", "id": "m", "method": "echo", "params": [{"a": "x" * 200}]}, 1.0)
    result, updated = outgoing(conn)
    assert (result["msg"], result["id"], result["error"]["error"]) == ("result", "m", 413)
    assert updated == {"msg": "updated", "methods": ["m"]}


def test_params_at_the_limit_and_long_messages_of_other_kinds_are_ordinary() -> None:
    conn = connected_conn(max_params_size=100)
    events = send(conn, {"msg": "sub", "id": "s", "name": "B" * 300, "params": ["x" * 94]}, 1.0)  # 100
    assert [type(e) for e in events] == [Subscribe]
    send(conn, {"msg": "ping", "id": "p" * 300}, 1.0)
    assert outgoing(conn) == [{"msg": "pong", "id": "p" * 300}]
