"""Methods and subscriptions over a real server (1.5 to 1.7: D-40..D-43, D-50..D-53, D-80..D-85)."""

from __future__ import annotations

import datetime as dt
import select
import time

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess


def test_method_returns_result_then_exactly_one_updated(client: DDPClient) -> None:
    """D-81."""
    reply = client.call("add", 2, 3, id="m1")
    assert reply["messages"] == [
        {"msg": "result", "id": "m1", "result": 5},
        {"msg": "updated", "methods": ["m1"]},
    ]
    client.assert_silent()


def test_method_params_and_result_carry_ejson(client: DDPClient) -> None:
    """E-31: dates, binary and escaped dicts survive params and result."""
    params = [{"$date": 1700000000123}, {"$binary": "AQID"}, {"$escape": {"$date": 5}}, [{"$InfNaN": -1}]]
    reply = client.call("echo", *params)
    assert reply["result"]["result"] == params


def test_method_returning_none_has_no_result_key(client: DDPClient) -> None:
    reply = client.call("nothing", id="n")
    assert reply["result"] == {"msg": "result", "id": "n"}


def test_unknown_method_gets_404_and_updated(client: DDPClient) -> None:
    """D-80, D-41 (Meteor 3.x text)."""
    reply = client.call("no_such_method", id="u")
    assert reply["messages"] == [
        {
            "msg": "result",
            "id": "u",
            "error": {
                "isClientSafe": True,
                "error": 404,
                "reason": "Method 'no_such_method' not found",
                "message": "Method 'no_such_method' not found [404]",
                "errorType": "Meteor.Error",
            },
        },
        {"msg": "updated", "methods": ["u"]},
    ]


def test_wrong_number_of_params_is_400_match_failed(client: DDPClient) -> None:
    """D-43."""
    error = client.call("add", 1)["result"]["error"]
    assert error["error"] == 400
    assert error["reason"] == "Match failed"
    assert "b" in error["details"]


def test_meteor_error_reaches_the_client_as_raised(client: DDPClient) -> None:
    """D-40: code, reason and details pass through."""
    error = client.call("fail_client_safe")["result"]["error"]
    assert error == {
        "isClientSafe": True,
        "error": "not-allowed",
        "reason": "You may not",
        "details": {"why": "testing"},
        "message": "You may not [not-allowed]",
        "errorType": "Meteor.Error",
    }


def test_other_exception_is_hidden_as_500_and_logged_with_its_traceback(
    server: ServerProcess, client: DDPClient
) -> None:
    """D-42: the client learns nothing of the exception; the log has it once."""
    start = len(server.log)
    reply = client.call("fail_internal", id="boom")
    assert reply["messages"] == [
        {
            "msg": "result",
            "id": "boom",
            "error": {
                "isClientSafe": True,
                "error": 500,
                "reason": "Internal server error",
                "message": "Internal server error [500]",
                "errorType": "Meteor.Error",
            },
        },
        {"msg": "updated", "methods": ["boom"]},
    ]
    server.wait_for_log(r"ValueError: secret internal detail", start=start)
    server.wait_for_log(r"DDP method 'fail_internal' raised ValueError", start=start)
    assert sum("Traceback" in line for line in server.log[start:]) == 1


def test_result_that_cannot_be_encoded_is_500(client: DDPClient) -> None:
    reply = client.call("unencodable_result", id="set")
    assert reply["result"]["error"]["error"] == 500
    assert reply["updated"] == {"msg": "updated", "methods": ["set"]}


def test_failed_method_keeps_none_of_its_writes(client: DDPClient) -> None:
    """A method runs in one transaction: an error rolls its writes back."""
    text = f"rolled-back-{client.session}"
    assert client.call("add_note_then_fail", text, id="f")["result"]["error"]["error"] == 409
    assert client.call("count_notes", text, id="c")["result"]["result"] == 0


def test_successful_method_writes_are_committed(client: DDPClient) -> None:
    text = f"kept-{client.session}"
    note_id = client.call("add_note", text, id="a")["result"]["result"]
    assert isinstance(note_id, str) and note_id.isdigit()
    assert client.call("count_notes", text, id="c")["result"]["result"] == 1


def test_methods_of_one_connection_run_in_order(client: DDPClient) -> None:
    """D-84: a slow method holds back the next one on the same connection."""
    client.send({"msg": "method", "method": "sleep", "params": [0.3], "id": "first"})
    client.send({"msg": "method", "method": "echo", "params": ["quick"], "id": "second"})
    ids = [
        m["id"]
        for m in client.recv_until(lambda m: m.get("id") == "second" and m["msg"] == "result")
        if m["msg"] == "result"
    ]
    assert ids == ["first", "second"]


def test_a_method_that_calls_unblock_lets_the_next_messages_through(client: DDPClient) -> None:
    """D-84: after this.unblock() the next call and sub are handled while the method runs on;
    its own result and updated come when it returns, exactly once each (D-81)."""
    client.send({"msg": "method", "method": "unblocked_sleep", "params": [0.5], "id": "slow"})
    client.send({"msg": "method", "method": "echo", "params": ["quick"], "id": "quick"})
    client.send({"msg": "sub", "name": "AllNotes", "params": [], "id": "notes"})
    seen = client.recv_until(lambda m: m.get("msg") == "updated" and "slow" in m["methods"])
    order = [
        (m["msg"], m.get("id") or m.get("methods") or m.get("subs"))
        for m in seen
        if m["msg"] in ("result", "updated", "ready")
    ]
    assert order == [
        ("result", "quick"),
        ("updated", ["quick"]),
        ("ready", ["notes"]),
        ("result", "slow"),
        ("updated", ["slow"]),
    ]
    assert seen[[m.get("id") for m in seen].index("slow")]["result"] == 0.5
    marker = client.call("echo", "marker", id="marker")["messages"]
    assert [m["msg"] for m in marker] == ["result", "updated"]  # nothing more about "slow" came before it


def test_methods_of_different_connections_run_side_by_side(server: ServerProcess, client: DDPClient) -> None:
    """A slow method on one connection does not hold back another connection."""
    with DDPClient(server.ws_url) as other:
        other.connect()
        client.send({"msg": "method", "method": "sleep", "params": [1.0], "id": "slow"})
        time.sleep(0.3)  # the slow method has started
        assert other.call("echo", "fast", id="fast")["result"]["result"] == ["fast"]
        # With one method worker the fast call would have waited for the slow one,
        # whose result would then already be waiting on the other socket.
        readable, _, _ = select.select([client.ws.sock], [], [], 0)
        assert not readable, "the fast method's result came only after the slow one's"
        assert client.recv(timeout=5)["id"] == "slow"


def test_method_sees_its_connection_and_random_seed(client: DDPClient) -> None:
    """D-85: randomSeed is exposed to the method."""
    reply = client.call("connection_info", id="i", randomSeed="0123456789abcdef0123")
    assert reply["result"]["result"] == {
        "id": client.session,
        "user_id": None,
        "random_seed": "0123456789abcdef0123",
        "has_client_address": True,
        "cookie": None,
    }


def test_result_date_is_sent_as_ejson(client: DDPClient) -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    reply = client.call("echo", {"$date": int(when.timestamp() * 1000)})
    assert reply["result"]["result"] == [{"$date": 1704164645678}]


# --- subscriptions ----------------------------------------------------------------


def test_sub_to_unknown_publication_gets_nosub_404(client: DDPClient) -> None:
    """D-50."""
    assert client.sub("NoSuchPublication", id="x") == [
        {
            "msg": "nosub",
            "id": "x",
            "error": {
                "isClientSafe": True,
                "error": 404,
                "reason": "Subscription 'NoSuchPublication' not found",
                "message": "Subscription 'NoSuchPublication' not found [404]",
                "errorType": "Meteor.Error",
            },
        }
    ]


def test_sub_with_params_get_queries_does_not_take_gets_nosub_400(client: DDPClient) -> None:
    messages = client.sub("NotesByText", "a", "b", id="bad")
    assert messages[-1]["msg"] == "nosub"
    assert messages[-1]["error"]["error"] == 400
    assert messages[-1]["error"]["reason"] == "Match failed"


def test_sub_to_a_publication_gets_ready_and_unsub_gets_nosub(client: DDPClient) -> None:
    """D-52, D-53."""
    assert client.sub("NotesByText", "anything", id="ok")[-1] == {"msg": "ready", "subs": ["ok"]}
    client.send({"msg": "unsub", "id": "ok"})
    assert client.recv() == {"msg": "nosub", "id": "ok"}


def test_repeated_sub_id_is_ignored(client: DDPClient) -> None:
    """D-51."""
    client.sub("AllNotes", id="same")
    client.send({"msg": "sub", "name": "AllNotes", "params": [], "id": "same"})
    # Requests are handled in order (D-84): a reply to the sub would come before this one.
    reply = client.call("echo", "marker", id="marker")
    assert [(m["msg"], m.get("id")) for m in reply["messages"]] == [("result", "marker"), ("updated", None)]


def test_unsub_of_unknown_id_still_gets_nosub(client: DDPClient) -> None:
    """D-32."""
    client.send({"msg": "unsub", "id": "never-subscribed"})
    assert client.recv() == {"msg": "nosub", "id": "never-subscribed"}


def test_subscriptions_beyond_the_limit_get_nosub_429(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(DDDP_MAX_SUBSCRIPTIONS="2").wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        assert ddp.sub("NotesByText", "no such note 1", id="one")[-1]["msg"] == "ready"
        assert ddp.sub("NotesByText", "no such note 2", id="two")[-1]["msg"] == "ready"
        refused = ddp.sub("NotesByText", "no such note 3", id="three")[-1]
        assert refused["msg"] == "nosub"
        assert refused["error"]["error"] == 429
        assert refused["error"]["reason"] == "Too many subscriptions: at most 2 per connection"
        ddp.send({"msg": "unsub", "id": "one"})
        assert ddp.recv() == {"msg": "nosub", "id": "one"}
        assert ddp.sub("NotesByText", "no such note 3", id="three")[-1] == {"msg": "ready", "subs": ["three"]}


def test_a_method_failing_again_and_again_is_logged_once_with_a_traceback(start_server) -> None:  # type: ignore[no-untyped-def]
    """Issue 9, attack 8: one client made a traceback per call."""
    server = start_server().wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        for n in range(30):
            assert ddp.call("fail_internal", id=f"f{n}")["result"]["error"]["error"] == 500
    server.wait_for_log(r"DDP method 'fail_internal' raised ValueError")
    assert server.text.count("Traceback") == 1


def test_a_method_inserting_rows_gives_them_the_ids_the_clients_stub_drew(client: DDPClient) -> None:
    """R-2, R-5, R-6: the ids drawn from the method's randomSeed are the documents' ids as published."""
    expected = ["devBuvC559TzDB3E9", "MjBCWTC6R4Tr5jJ3h"]  # seed 0123456789abcdef0123, /collection/tasks
    reply = client.call("add_tasks", "first", "second", id="t", randomSeed="0123456789abcdef0123")
    assert reply["result"] == {"msg": "result", "id": "t", "result": expected}
    client.sub("AllTasks", id="tasks")
    held = client.collections["tasks"]
    assert {doc_id: held[doc_id] for doc_id in expected} == {
        expected[0]: {"text": "first"},
        expected[1]: {"text": "second"},
    }
