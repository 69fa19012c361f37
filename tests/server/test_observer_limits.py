"""Subscription amplification (issue 9, attack 4): a connection may hold only so many
distinct queries (DDDP_MAX_OBSERVERS_PER_CONNECTION), and a process observe only so
many (DDDP_MAX_OBSERVERS); subscriptions that share an observer cost nothing more."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def limited_server(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(
        DDDP_MAX_OBSERVERS_PER_CONNECTION="3", DDDP_MAX_OBSERVERS="5"
    ).wait_until_listening()


def subscribe(client: DDPClient, sub_id: str, text: str) -> dict[str, Any]:
    """`ready` or `nosub` of a NotesByText subscription (no documents: no such notes)."""
    client.send({"msg": "sub", "id": sub_id, "name": "NotesByText", "params": [f"limits {text}"]})
    reply = client.recv()
    assert reply.get("subs") == [sub_id] or reply.get("id") == sub_id, reply
    return reply


def test_a_connection_holds_at_most_its_distinct_queries_and_shares_the_rest(
    limited_server: ServerProcess,
) -> None:
    with DDPClient(limited_server.ws_url) as client:
        client.connect()
        for number in range(3):
            assert subscribe(client, f"s{number}", f"a{number}")["msg"] == "ready"
        refused = subscribe(client, "s3", "a3")
        assert refused["msg"] == "nosub"
        assert refused["error"]["error"] == 429
        assert "at most 3" in refused["error"]["reason"]
        # The same query again is no new observer.
        assert subscribe(client, "again", "a0")["msg"] == "ready"
        # Once one ends, there is room.
        client.send({"msg": "unsub", "id": "s1"})
        assert client.recv() == {"msg": "nosub", "id": "s1"}
        assert subscribe(client, "s4", "a3")["msg"] == "ready"


def test_a_process_observes_at_most_its_limit_but_shares_what_it_observes(
    limited_server: ServerProcess,
) -> None:
    with DDPClient(limited_server.ws_url) as first, DDPClient(limited_server.ws_url) as second:
        first.connect()
        second.connect()
        for number in range(3):
            assert subscribe(first, f"s{number}", f"b{number}")["msg"] == "ready"
        for number in range(2):
            assert subscribe(second, f"s{number}", f"c{number}")["msg"] == "ready"
        refused = subscribe(second, "s2", "c2")  # a sixth query in the process
        assert refused["msg"] == "nosub"
        assert refused["error"] == {
            "isClientSafe": True,
            "error": 503,
            "reason": "Too many live queries on this server, retry later",
            "message": "Too many live queries on this server, retry later [503]",
            "errorType": "Meteor.Error",
        }
        with DDPClient(limited_server.ws_url) as third:
            third.connect()
            assert subscribe(third, "shared", "b0")["msg"] == "ready"  # observed already
        first.close()  # its three observers end with it...
        for _ in range(50):
            reply = subscribe(second, "s2", "c2")
            if reply["msg"] == "ready":
                break
            time.sleep(0.05)  # ...once the server has seen it go
        assert reply["msg"] == "ready", reply
