"""Rate limits over a real server: failed logins per connection and per account, and the
DDDP_RATE_LIMITS rules on methods and subscriptions (Meteor's too-many-requests)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tests.accounts.test_login import AMBIGUOUS, digest, login, new_user
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)

RULES = [
    {"type": "method", "name": "echo", "connection_id": True, "requests": 3, "interval": 30},
    {"type": "subscription", "name": "AllNotes", "connection_id": True, "requests": 1, "interval": 30},
]


@pytest.fixture(scope="module")
def limited(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(
        DDDP_LOGIN_FAILURES="2", DDDP_LOGIN_FAILURES_INTERVAL="1.5", DDDP_RATE_LIMITS=json.dumps(RULES)
    ).wait_until_listening()


def connected(server: ServerProcess) -> DDPClient:
    client = DDPClient(server.ws_url)
    client.connect()
    return client


def error_of(reply: dict) -> tuple[object, str]:
    return reply["result"]["error"]["error"], reply["result"]["error"]["reason"]


def test_failed_logins_of_a_connection_are_limited_then_allowed_again(limited: ServerProcess) -> None:
    user = new_user()
    with connected(limited) as client:
        for attempt in range(2):
            assert error_of(login(client, user, digest("wrong"), id=f"w{attempt}"))[1] == AMBIGUOUS
        refused = login(client, user, id="right")["result"]["error"]  # even the right password now
        assert refused["error"] == "too-many-requests"
        assert refused["reason"].startswith("Error, too many requests. Please slow down. You must wait ")
        assert 0 < refused["details"]["timeToReset"] <= 1500
        time.sleep(refused["details"]["timeToReset"] / 1000)
        assert login(client, user, id="later")["result"]["result"]["id"] == str(user.pk)


def test_failed_logins_of_an_account_are_limited_from_every_connection(limited: ServerProcess) -> None:
    user, other = new_user(), new_user()
    for attempt in range(2):
        with connected(limited) as client:
            login(client, user, digest("wrong"), id=f"w{attempt}")
    with connected(limited) as fresh:
        assert login(fresh, user)["result"]["error"]["error"] == "too-many-requests"
        # another account is not held back by this one's guesses
        assert login(fresh, other, id="other")["result"]["result"]["id"] == str(other.pk)


def test_a_rule_limits_a_method_per_connection(limited: ServerProcess) -> None:
    with connected(limited) as client, connected(limited) as second:
        for number in range(3):
            assert client.call("echo", number, id=f"e{number}")["result"]["result"] == [number]
        reply = client.call("echo", "one too many", id="over")
        assert reply["result"]["error"]["error"] == "too-many-requests"
        assert [m["msg"] for m in reply["messages"]] == ["result", "updated"]  # D-81 still
        assert second.call("echo", "mine", id="mine")["result"]["result"] == ["mine"]
        assert client.call("add", 1, 2, id="add")["result"]["result"] == 3  # another method: no rule


def test_a_rule_limits_a_subscription_with_a_nosub(limited: ServerProcess) -> None:
    with connected(limited) as client:
        assert client.sub("AllNotes", id="first")[-1] == {"msg": "ready", "subs": ["first"]}
        nosub = client.sub("AllNotes", id="second")[-1]
        assert nosub["msg"] == "nosub" and nosub["error"]["error"] == "too-many-requests"
