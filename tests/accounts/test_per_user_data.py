"""Logging in or out re-runs a connection's subscriptions for the new user (A-4, D-59).

The client gets exactly the difference before the login's result: `added` for
rows it may now see, `removed` for rows it may no longer see, nothing for the
rows it keeps (no removed/added flicker).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.accounts.test_login import login, new_user
from tests.accountsapp.models import Diary
from tests.ddp_client import DDPClient

pytestmark = pytest.mark.django_db(transaction=True)


def data_messages(messages: list[dict]) -> list[tuple[str, str]]:
    return [
        (m["msg"], m["id"])
        for m in messages
        if m["msg"] in ("added", "changed", "removed") and m["collection"] == "accountsapp.diary"
    ]


def test_login_adds_the_users_rows_before_the_result_and_logout_removes_them(client: DDPClient) -> None:
    user, stranger = new_user(), new_user()
    mine = Diary.objects.create(owner=user, text="mine")
    Diary.objects.create(owner=stranger, text="not mine")
    assert data_messages(client.sub("MyDiaries", id="my")) == []
    messages = login(client, user)["messages"]
    assert data_messages(messages) == [("added", str(mine.pk))]
    assert [m["msg"] for m in messages][-2:] == ["result", "updated"]
    assert client.collections["accountsapp.diary"] == {
        str(mine.pk): {"owner": str(user.pk), "text": "mine", "public": False}
    }
    messages = client.call("logout", id="out")["messages"]
    assert data_messages(messages) == [("removed", str(mine.pk))]
    assert messages[-2]["msg"] == "result"


def test_rows_the_client_keeps_across_a_login_get_no_message(client: DDPClient) -> None:
    """D-59: a public row stays put (no removed, no added); only the difference is sent."""
    user = new_user()
    public = Diary.objects.create(owner=new_user(), text="public", public=True)
    own = Diary.objects.create(owner=user, text="own")
    assert data_messages(client.sub("VisibleDiaries", id="v")) == [("added", str(public.pk))]
    assert data_messages(login(client, user)["messages"]) == [("added", str(own.pk))]
    assert data_messages(client.call("logout", id="out")["messages"]) == [("removed", str(own.pk))]
    assert set(client.collections["accountsapp.diary"]) == {str(public.pk)}


def test_a_publication_that_does_not_depend_on_the_user_sends_nothing_at_login(client: DDPClient) -> None:
    user = new_user()
    public = Diary.objects.create(owner=user, text="public", public=True)
    assert data_messages(client.sub("PublicDiaries", id="p")) == [("added", str(public.pk))]
    assert data_messages(login(client, user)["messages"]) == []
    marker = Diary.objects.create(owner=user, text="marker", public=True)
    assert data_messages(client.recv_until(lambda m: m.get("id") == str(marker.pk))) == [
        ("added", str(marker.pk))
    ]


def test_after_a_login_live_changes_follow_the_new_user(client: DDPClient) -> None:
    user, stranger = new_user(), new_user()
    client.sub("MyDiaries", id="my")
    login(client, user)
    Diary.objects.create(owner=stranger, text="theirs")
    later = Diary.objects.create(owner=user, text="later")
    assert data_messages(client.recv_until(lambda m: m.get("msg") == "added")) == [("added", str(later.pk))]
    later.owner = stranger
    later.save()
    assert data_messages(client.recv_until(lambda m: m.get("msg") == "removed")) == [
        ("removed", str(later.pk))
    ]


def test_logging_in_as_another_user_swaps_the_rows(client: DDPClient) -> None:
    first, second = new_user(), new_user()
    a = Diary.objects.create(owner=first, text="a")
    b = Diary.objects.create(owner=second, text="b")
    client.sub("MyDiaries", id="my")
    login(client, first)
    messages = login(client, second, id="again")["messages"]
    assert sorted(data_messages(messages)) == [("added", str(b.pk)), ("removed", str(a.pk))]
    users = [(m["msg"], m["id"]) for m in messages if m.get("collection") == "users"]
    assert sorted(users) == [("added", str(second.pk)), ("removed", str(first.pk))]


def test_a_subscription_made_after_login_gets_the_users_rows(client: DDPClient) -> None:
    user = new_user()
    mine = Diary.objects.create(owner=user, text="mine")
    login(client, user)
    assert data_messages(client.sub("MyDiaries", id="my")) == [("added", str(mine.pk))]


@pytest.fixture(scope="module")
def two_observers(start_module_server: Any) -> Any:
    return start_module_server(DDDP_MAX_OBSERVERS="2").wait_until_listening()


def test_a_publication_that_does_not_depend_on_the_user_is_one_observer_for_every_user(
    two_observers: Any,
) -> None:
    """Item 9: users whose querysets compile to the same SQL share an observer. With room for
    two observers, three users share PublicDiaries, one MyDiaries fits, a second one does not."""
    users = [new_user() for _ in range(3)]
    clients = [DDPClient(two_observers.ws_url) for _ in users]
    try:
        for client, user in zip(clients, users, strict=True):
            client.connect()
            login(client, user)
            assert client.sub("PublicDiaries", id="public")[-1]["msg"] == "ready"
        assert clients[0].sub("MyDiaries", id="mine")[-1]["msg"] == "ready"
        refused = clients[1].sub("MyDiaries", id="mine")[-1]
        assert refused["msg"] == "nosub" and refused["error"]["error"] == 503
        marker = Diary.objects.create(owner=users[2], text="for all", public=True)
        for client in clients:  # the shared observer serves them all
            client.recv_until(lambda m: m.get("msg") == "added" and m["id"] == str(marker.pk))
    finally:
        for client in clients:
            client.close()
