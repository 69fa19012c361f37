"""Meteor accounts over a real server (section 4: A-1 to A-6, A-20): log in, resume, log out.

Users are made by this test process through Django, committed for real; the
server under test checks passwords with the same hashers (tests.settings).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from dddp.accounts.models import LoginToken
from dddp.accounts.tokens import delete_expired, hash_token
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()
AMBIGUOUS = "Something went wrong. Please check your credentials."


def digest(password: str) -> dict[str, str]:
    return {"digest": hashlib.sha256(password.encode()).hexdigest(), "algorithm": "sha-256"}


def new_user(password: str = "s3cret pw", **fields: Any) -> Any:
    name = fields.pop("username", None) or f"user-{uuid.uuid4().hex[:10]}"
    return User.objects.create_user(name, fields.pop("email", f"{name}@example.com"), password, **fields)


def login(client: DDPClient, user: Any, password: Any = None, id: str = "login") -> dict[str, Any]:
    reply = client.call(
        "login", {"user": {"username": user.username}, "password": password or digest("s3cret pw")}, id=id
    )
    return reply


@pytest.fixture
def other(server: ServerProcess) -> Iterator[DDPClient]:
    with DDPClient(server.ws_url) as second:
        second.connect()
        yield second


def users_docs(client: DDPClient) -> dict[str, dict[str, Any]]:
    return client.collections.get("users", {})


# --- password logins ------------------------------------------------------------------------


def test_a_digest_login_answers_id_token_expiry_and_type(client: DDPClient) -> None:
    """A-1, A-3: the token is 43 characters of Random.secret; it expires 90 days on."""
    user = new_user()
    before = time.time()
    result = login(client, user)["result"]["result"]
    assert result["id"] == str(user.pk) and result["type"] == "password"
    assert len(result["token"]) == 43 and set(result["token"]) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    )
    expires = result["tokenExpires"]["$date"] / 1000
    assert before + 90 * 86400 - 5 < expires < time.time() + 90 * 86400 + 5


def test_the_token_is_stored_only_hashed(client: DDPClient) -> None:
    user = new_user()
    token = login(client, user)["result"]["result"]["token"]
    stored = list(LoginToken.objects.filter(user=user).values_list("hashed_token", flat=True))
    assert stored == [hash_token(token)] and token not in stored


def test_the_users_document_arrives_before_the_result(client: DDPClient) -> None:
    """A-4, A-20: Meteor.user() is there when the login callback runs; no password hash, ever."""
    user = new_user(email="Ada@Example.com")
    messages = login(client, user)["messages"]
    kinds = [m["msg"] for m in messages]
    assert kinds == ["added", "result", "updated"]
    assert messages[0] == {
        "msg": "added",
        "collection": "users",
        "id": str(user.pk),
        "fields": {
            "username": user.username,
            "emails": [{"address": "Ada@example.com", "verified": False}],
            "profile": {},
        },
    }


def test_a_plaintext_password_logs_in_too(client: DDPClient) -> None:
    user = new_user()
    result = login(client, user, password="s3cret pw")["result"]["result"]
    assert result["id"] == str(user.pk) and result["type"] == "password"


@pytest.mark.parametrize("selector", ["email", "id", "username-in-other-case"])
def test_the_user_may_be_named_by_email_id_or_a_username_in_another_case(
    client: DDPClient, selector: str
) -> None:
    """A-2: Meteor matches username and email case-insensitively."""
    user = new_user()
    named = {
        "email": {"email": user.email.upper()},
        "id": {"id": str(user.pk)},
        "username-in-other-case": {"username": user.username.upper()},
    }[selector]
    result = client.call("login", {"user": named, "password": digest("s3cret pw")})["result"]["result"]
    assert result["id"] == str(user.pk)


@pytest.mark.parametrize("case", ["wrong password", "unknown user", "inactive user", "no password"])
def test_every_refused_login_is_the_same_403_and_logs_nobody_in(client: DDPClient, case: str) -> None:
    """A-5: Meteor 3's ambiguous text by default; the connection stays logged out."""
    user = new_user(is_active=case != "inactive user")
    if case == "no password":
        user.set_unusable_password()
        user.save()
    name = "nobody-" + uuid.uuid4().hex if case == "unknown user" else user.username
    password = digest("wrong" if case == "wrong password" else "s3cret pw")
    reply = client.call("login", {"user": {"username": name}, "password": password})
    assert reply["result"]["error"]["error"] == 403
    assert reply["result"]["error"]["reason"] == AMBIGUOUS
    assert [m["msg"] for m in reply["messages"]] == ["result", "updated"]  # no users document
    assert "result" not in client.call("whoami", id="who")["result"]


@pytest.mark.parametrize(
    "options",
    [
        {"user": {"username": "a", "email": "a@b.c"}, "password": "x"},  # two names
        {"user": {"username": ""}, "password": "x"},
        {"user": {"name": "a"}, "password": "x"},
        {"user": "a", "password": "x"},
        {"user": {"username": "a"}, "password": {"digest": "abc", "algorithm": "sha-256"}},
        {"user": {"username": "a"}, "password": {"digest": "a" * 64, "algorithm": "md5"}},
        {"user": {"username": "a"}, "password": 5},
        {"user": {"username": "a"}, "password": "x", "extra": 1},
        {"resume": 5},
    ],
)
def test_malformed_login_options_are_400_match_failed(client: DDPClient, options: dict[str, Any]) -> None:
    """A-2, D-43."""
    error = client.call("login", options)["result"]["error"]
    assert (error["error"], error["reason"]) == (400, "Match failed")


@pytest.mark.parametrize("params", [[{"foo": 1}], [{}]])
def test_login_options_no_handler_claims_are_400(client: DDPClient, params: list[Any]) -> None:
    """A-5."""
    error = client.call("login", *params)["result"]["error"]
    assert (error["error"], error["reason"]) == (400, "Unrecognized options for login request")


def test_login_takes_exactly_one_object(client: DDPClient) -> None:
    for params in ([], ["a"], [{"resume": "x"}, 2]):
        assert client.call("login", *params)["result"]["error"]["error"] == 400


def test_a_hash_made_before_the_digest_hasher_takes_one_plaintext_login_then_digests(
    client: DDPClient,
) -> None:
    """The upgrade path of docs/accounts.rst: Django's own PBKDF2 hash cannot check a digest;
    a plaintext login checks it and rewrites it with the first hasher."""
    user = new_user()
    user.password = make_password("s3cret pw", hasher="pbkdf2_sha256")
    user.save()
    assert login(client, user)["result"]["error"]["reason"] == AMBIGUOUS
    assert login(client, user, password="s3cret pw", id="plain")["result"]["result"]["id"] == str(user.pk)
    user.refresh_from_db()
    assert user.password.startswith("meteor_pbkdf2_sha256$")
    with DDPClient(client.url) as fresh:
        fresh.connect()
        assert login(fresh, user)["result"]["result"]["id"] == str(user.pk)


# --- resume tokens ---------------------------------------------------------------------------


def test_a_token_resumes_on_another_connection_with_its_first_expiry(
    client: DDPClient, other: DDPClient
) -> None:
    """A-3, A-6: type resume; tokenExpires counts from the password login."""
    user = new_user()
    first = login(client, user)["result"]["result"]
    reply = other.call("login", {"resume": first["token"]})
    assert [m["msg"] for m in reply["messages"]] == ["added", "result", "updated"]
    assert reply["result"]["result"] == {**first, "type": "resume"}


def test_an_unknown_token_is_403_logged_out(client: DDPClient) -> None:
    """A-5."""
    error = client.call("login", {"resume": "not-a-token"})["result"]["error"]
    assert (error["error"], error["reason"]) == (
        403,
        "You've been logged out by the server. Please log in again.",
    )


def test_an_expired_token_is_403_expired(client: DDPClient) -> None:
    user = new_user()
    token = login(client, user)["result"]["result"]["token"]
    LoginToken.objects.filter(user=user).update(when=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=91))
    with DDPClient(client.url) as fresh:
        fresh.connect()
        error = fresh.call("login", {"resume": token})["result"]["error"]
    assert (error["error"], error["reason"]) == (403, "Your session has expired. Please log in again.")


def test_the_sweep_of_expired_tokens_closes_their_connections(client: DDPClient, other: DDPClient) -> None:
    """What the server's periodic sweep does: expired tokens go, and their connections close."""
    expired, fresh = new_user(), new_user()
    login(client, expired)
    login(other, fresh, id="fresh")
    LoginToken.objects.filter(user=expired).update(
        when=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=91)
    )
    assert delete_expired() == 1
    assert client.recv_close()[0] == 1000
    assert other.call("whoami", id="who")["result"]["result"] == fresh.pk


def test_a_token_logs_in_only_its_own_user(client: DDPClient, other: DDPClient) -> None:
    mine, theirs = new_user(), new_user()
    login(client, mine)
    token = login(other, theirs)["result"]["result"]["token"]
    with DDPClient(client.url) as fresh:
        fresh.connect()
        assert fresh.call("login", {"resume": token})["result"]["result"]["id"] == str(theirs.pk)
        assert set(users_docs(fresh)) == {str(theirs.pk)}


# --- logout and revocation ----------------------------------------------------------------------


def test_logout_removes_the_users_document_before_its_result(client: DDPClient) -> None:
    """4.2: logout's result has no value; the user document leaves the client's view first."""
    user = new_user()
    login(client, user)
    reply = client.call("logout", id="out")
    assert reply["messages"] == [
        {"msg": "removed", "collection": "users", "id": str(user.pk)},
        {"msg": "result", "id": "out"},
        {"msg": "updated", "methods": ["out"]},
    ]
    assert "result" not in client.call("whoami", id="who")["result"]


def test_after_logout_the_token_resumes_nothing_and_its_other_connections_close(
    client: DDPClient, other: DDPClient
) -> None:
    """A-4: Meteor closes every connection logged in with a token that is deleted."""
    user = new_user()
    token = login(client, user)["result"]["result"]["token"]
    other.call("login", {"resume": token})
    client.call("logout", id="out")
    assert other.recv_close()[0] == 1000
    client.call("whoami", id="who")  # the connection that logged out stays open
    with DDPClient(client.url) as fresh:
        fresh.connect()
        error = fresh.call("login", {"resume": token})["result"]["error"]
    assert error["reason"] == "You've been logged out by the server. Please log in again."


def test_a_token_revoked_through_one_server_closes_its_connections_on_another(
    client: DDPClient, start_server: Any
) -> None:
    """Every server process listens for revoked tokens (on PostgreSQL's NOTIFY)."""
    second = start_server().wait_until_listening()
    user = new_user()
    token = login(client, user)["result"]["result"]["token"]
    with DDPClient(second.ws_url) as elsewhere:
        elsewhere.connect()
        assert elsewhere.call("login", {"resume": token})["result"]["result"]["id"] == str(user.pk)
        client.call("logout", id="out")
        assert elsewhere.recv_close()[0] == 1000


def test_deleting_a_user_closes_its_connections(client: DDPClient) -> None:
    user = new_user()
    login(client, user)
    user.delete()
    assert client.recv_close()[0] == 1000


def test_get_new_token_keeps_the_login_time_and_the_old_token_lives_until_remove_other_tokens(
    client: DDPClient, other: DDPClient
) -> None:
    """4.2; Meteor's logoutOtherClients is getNewToken then removeOtherTokens."""
    user = new_user()
    first = login(client, user)["result"]["result"]
    other.call("login", {"resume": first["token"]})
    renewed = client.call("getNewToken", id="new")["result"]["result"]
    assert set(renewed) == {"id", "token", "tokenExpires"}
    assert renewed["token"] != first["token"] and renewed["tokenExpires"] == first["tokenExpires"]
    assert other.call("whoami", id="still")["result"]["result"] == user.pk
    assert "result" not in client.call("removeOtherTokens", id="rm")["result"]
    assert other.recv_close()[0] == 1000
    assert client.call("whoami", id="who")["result"]["result"] == user.pk
    assert list(LoginToken.objects.filter(user=user).values_list("hashed_token", flat=True)) == [
        hash_token(renewed["token"])
    ]


@pytest.mark.parametrize("name", ["getNewToken", "removeOtherTokens"])
def test_token_methods_need_a_login(client: DDPClient, name: str) -> None:
    error = client.call(name)["result"]["error"]
    assert error["error"] == "You are not logged in." and "reason" not in error


# --- changing passwords --------------------------------------------------------------------------


def test_change_password_keeps_this_login_and_ends_the_others(client: DDPClient, other: DDPClient) -> None:
    user = new_user()
    token = login(client, user)["result"]["result"]["token"]
    other.call("login", {"resume": token})
    with DDPClient(client.url) as third:
        third.connect()
        login(third, user, id="third")
        wrong = third.call("changePassword", digest("nope"), digest("new pw"), id="bad")["result"]["error"]
        assert (wrong["error"], wrong["reason"]) == (403, AMBIGUOUS)
        reply = third.call("changePassword", digest("s3cret pw"), digest("new pw"), id="ok")
        assert reply["result"]["result"] == {"passwordChanged": True}
        assert client.recv_close()[0] == 1000 and other.recv_close()[0] == 1000
        assert third.call("whoami", id="who")["result"]["result"] == user.pk
    with DDPClient(client.url) as fresh:
        fresh.connect()
        assert login(fresh, user)["result"]["error"]["reason"] == AMBIGUOUS
        assert login(fresh, user, password=digest("new pw"), id="new")["result"]["result"]["id"] == str(
            user.pk
        )


def test_change_password_needs_a_login(client: DDPClient) -> None:
    error = client.call("changePassword", digest("a"), digest("b"))["result"]["error"]
    assert (error["error"], error["reason"]) == (401, "Must be logged in")


def test_a_password_set_through_django_ends_every_login(client: DDPClient) -> None:
    """The admin, `changepassword`, set_password and save: the tokens die, their connections close."""
    user = new_user()
    token = login(client, user)["result"]["result"]["token"]
    user.set_password("changed in the admin")
    user.save()
    assert client.recv_close()[0] == 1000
    with DDPClient(client.url) as fresh:
        fresh.connect()
        assert fresh.call("login", {"resume": token})["result"]["error"]["error"] == 403


# --- sign-ups ----------------------------------------------------------------------------------------


def test_create_user_is_forbidden_unless_a_setting_allows_it(client: DDPClient) -> None:
    error = client.call("createUser", {"username": "newbie", "password": digest("pw")})["result"]["error"]
    assert (error["error"], error["reason"]) == (403, "Signups forbidden")
    assert not User.objects.filter(username="newbie").exists()


def test_meteor_login_service_configuration_is_ready_and_empty(client: DDPClient) -> None:
    """A-21."""
    assert client.sub("meteor.loginServiceConfiguration", id="lsc") == [{"msg": "ready", "subs": ["lsc"]}]


def test_the_current_user_publication_is_not_subscribable_by_name(client: DDPClient) -> None:
    reply = client.sub("dddp.accounts.current_user", id="u")
    assert reply[-1]["msg"] == "nosub" and reply[-1]["error"]["error"] == 404


def test_only_password_logins_count_as_cpu_heavy() -> None:
    """A resume checks no hash, so a reconnect storm is not held to one login per hashing thread."""
    from dddp.accounts.login import hashes_a_password

    assert hashes_a_password([{"user": {"username": "a"}, "password": digest("x")}])
    assert not hashes_a_password([{"resume": "token"}])
