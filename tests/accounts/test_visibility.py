"""A Collection's user_rel: each user sees only the rows it leads to, in every publication,
on the first read and live, through relations too; client writes find no other rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.accounts.test_login import login, new_user
from tests.accountsapp.models import Page, Secret
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logged_in(server: ServerProcess) -> Iterator[Any]:
    """Clients logged in as users of their own: `logged_in(user)`, closed at the end."""
    opened: list[DDPClient] = []

    def open_as(user: Any) -> DDPClient:
        client = DDPClient(server.ws_url)
        opened.append(client)
        client.connect()
        if user is not None:
            login(client, user)
        return client

    yield open_as
    for client in opened:
        client.close()


def ids(client: DDPClient, collection: str) -> set[str]:
    return set(client.collections.get(collection, {}))


def test_each_user_gets_only_its_own_rows_of_a_publication_of_all_rows(logged_in: Any) -> None:
    ada, bob = new_user(), new_user()
    mine = Secret.objects.create(owner=ada, text="ada's")
    theirs = Secret.objects.create(owner=bob, text="bob's")
    page = Page.objects.create(secret=mine, text="ada's page")
    Page.objects.create(secret=theirs, text="bob's page")
    ada_client, bob_client, anonymous = logged_in(ada), logged_in(bob), logged_in(None)
    for client in (ada_client, bob_client, anonymous):
        client.sub("AllSecrets", id="all")
    assert ids(ada_client, "accountsapp.secret") == {str(mine.pk)}
    assert ids(ada_client, "accountsapp.page") == {str(page.pk)}  # through secret__owner
    assert ids(bob_client, "accountsapp.secret") == {str(theirs.pk)}
    assert ids(anonymous, "accountsapp.secret") == set() and ids(anonymous, "accountsapp.page") == set()


def test_a_publication_with_params_is_narrowed_too(logged_in: Any) -> None:
    ada, bob = new_user(), new_user()
    mine = Secret.objects.create(owner=ada, text="same text")
    Secret.objects.create(owner=bob, text="same text")
    client = logged_in(ada)
    client.sub("SecretsByText", "same text", id="s")
    assert ids(client, "accountsapp.secret") == {str(mine.pk)}


def test_live_changes_reach_only_the_user_they_concern(logged_in: Any) -> None:
    ada, bob = new_user(), new_user()
    ada_client, bob_client = logged_in(ada), logged_in(bob)
    ada_client.sub("AllSecrets", id="all")
    bob_client.sub("AllSecrets", id="all")
    bobs = Secret.objects.create(owner=bob, text="bob's new")
    bob_client.wait_until(lambda: str(bobs.pk) in ids(bob_client, "accountsapp.secret"), lambda: "no added")
    adas = Secret.objects.create(owner=ada, text="marker")
    seen = ada_client.recv_until(lambda m: m.get("msg") == "added" and m["id"] == str(adas.pk))
    assert [m for m in seen if m.get("id") == str(bobs.pk)] == []  # Bob's never reached Ada


def test_a_row_given_to_another_user_leaves_the_first_and_reaches_the_second(logged_in: Any) -> None:
    ada, bob = new_user(), new_user()
    secret = Secret.objects.create(owner=ada, text="handed over")
    page = Page.objects.create(secret=secret, text="its page")
    ada_client, bob_client = logged_in(ada), logged_in(bob)
    ada_client.sub("AllSecrets", id="all")
    bob_client.sub("AllSecrets", id="all")
    secret.owner = bob
    secret.save()
    ada_client.wait_until(
        lambda: (
            ids(ada_client, "accountsapp.secret") == set() and ids(ada_client, "accountsapp.page") == set()
        ),
        lambda: f"ada still holds {ada_client.collections}",
    )
    bob_client.wait_until(
        lambda: (
            ids(bob_client, "accountsapp.secret") == {str(secret.pk)}
            and ids(bob_client, "accountsapp.page") == {str(page.pk)}
        ),
        lambda: f"bob holds {bob_client.collections}",
    )


def test_client_writes_find_no_row_the_user_may_not_see(logged_in: Any) -> None:
    ada, bob = new_user(), new_user()
    theirs = Secret.objects.create(owner=bob, text="bob's")
    client = logged_in(ada)
    reply = client.call("/accountsapp.secret/update", {"_id": str(theirs.pk)}, {"$set": {"text": "mine now"}})
    assert reply["result"]["result"] == 0
    assert client.call("/accountsapp.secret/remove", str(theirs.pk), id="rm")["result"]["result"] == 0
    theirs.refresh_from_db()
    assert theirs.text == "bob's"
    with DDPClient(client.url) as owner:
        owner.connect()
        login(owner, bob)
        reply = owner.call(
            "/accountsapp.secret/update", {"_id": str(theirs.pk)}, {"$set": {"text": "edited"}}
        )
        assert reply["result"]["result"] == 1
