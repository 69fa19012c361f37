"""Methods and publications that need a logged-in user (item 11): 401 "Must be logged in"."""

from __future__ import annotations

import pytest

from tests.accounts.test_login import login, new_user
from tests.accountsapp.models import Diary
from tests.ddp_client import DDPClient

pytestmark = pytest.mark.django_db(transaction=True)

MUST_BE_LOGGED_IN = (401, "Must be logged in")


def error_of(reply: dict) -> tuple[object, str]:
    return reply["error"]["error"], reply["error"]["reason"]


def test_an_anonymous_client_cannot_call_a_method_that_requires_a_user(client: DDPClient) -> None:
    assert error_of(client.call("members_only", 1, id="anon")["result"]) == MUST_BE_LOGGED_IN
    login(client, new_user())
    assert client.call("members_only", 2, id="member")["result"]["result"] == 2


def test_an_anonymous_client_gets_nosub_401_and_a_logout_ends_the_subscription(client: DDPClient) -> None:
    diary = Diary.objects.create(owner=new_user(), text="public", public=True)
    nosub = client.sub("MembersDiaries", id="anon")[-1]
    assert nosub["msg"] == "nosub" and error_of(nosub) == MUST_BE_LOGGED_IN
    login(client, new_user())
    assert [m["msg"] for m in client.sub("MembersDiaries", id="member")] == ["added", "ready"]
    messages = client.call("logout", id="out")["messages"]
    kinds = [(m["msg"], m.get("id")) for m in messages]
    assert ("removed", str(diary.pk)) in kinds  # its documents withdrawn...
    ended = next(m for m in messages if m["msg"] == "nosub")
    assert ended["id"] == "member" and error_of(ended) == MUST_BE_LOGGED_IN  # ...and the sub ended
    assert kinds.index(("nosub", "member")) < kinds.index(("result", "out"))
