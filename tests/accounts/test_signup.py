"""createUser, where a setting allows sign-ups (4.2)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model

from tests.accounts.test_login import AMBIGUOUS, digest
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


@pytest.fixture(scope="module")
def signup_server(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(DDDP_ACCOUNTS_SIGNUP="1").wait_until_listening()


@pytest.fixture
def client(signup_server: ServerProcess) -> Iterator[DDPClient]:
    with DDPClient(signup_server.ws_url) as ddp:
        ddp.connect()
        yield ddp


def unique(prefix: str = "new") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_create_user_makes_the_user_and_logs_it_in(client: DDPClient) -> None:
    name = unique()
    reply = client.call(
        "createUser", {"username": name, "email": f"{name}@example.com", "password": digest("pw 1")}
    )
    result = reply["result"]["result"]
    user = User.objects.get(username=name)
    assert result["id"] == str(user.pk) and result["type"] == "password" and len(result["token"]) == 43
    assert [m["msg"] for m in reply["messages"]] == ["added", "result", "updated"]  # its users document
    assert user.password.startswith("meteor_pbkdf2_sha256$") and user.check_password("pw 1")
    with DDPClient(client.url) as again:
        again.connect()
        logged = again.call("login", {"user": {"email": f"{name}@example.com"}, "password": digest("pw 1")})
        assert logged["result"]["result"]["id"] == str(user.pk)


def test_an_email_alone_is_the_username(client: DDPClient) -> None:
    email = f"{unique()}@example.com"
    client.call("createUser", {"email": email, "password": "plain pw"})
    user = User.objects.get(email=email)
    assert user.username == email and user.check_password("plain pw")


def test_a_username_or_email_is_needed(client: DDPClient) -> None:
    error = client.call("createUser", {"password": digest("pw")})["result"]["error"]
    assert (error["error"], error["reason"]) == (400, "Need to set a username or email")


@pytest.mark.parametrize("taken", ["username", "email"])
def test_a_name_taken_in_any_case_is_refused_with_the_ambiguous_text(client: DDPClient, taken: str) -> None:
    name = unique()
    User.objects.create_user(name, f"{name}@example.com", "x")
    options = (
        {"username": name.upper()}
        if taken == "username"
        else {"username": unique(), "email": f"{name.upper()}@example.com"}
    )
    error = client.call("createUser", {**options, "password": digest("pw")})["result"]["error"]
    assert (error["error"], error["reason"]) == (403, AMBIGUOUS)
    assert User.objects.filter(username__iexact=name).count() == 1


def test_the_user_models_validation_is_a_400_naming_the_field(client: DDPClient) -> None:
    error = client.call("createUser", {"username": "no spaces allowed!", "password": digest("pw")})["result"][
        "error"
    ]
    assert error["error"] == 400 and error["reason"].startswith("username: ")
    assert not User.objects.filter(username="no spaces allowed!").exists()


@pytest.mark.parametrize(
    "options",
    [
        {"username": 5, "password": "pw"},
        {"username": "x"},
        {"username": "x", "password": "pw", "admin": True},
        "x",
    ],
)
def test_malformed_options_are_400(client: DDPClient, options: object) -> None:
    error = client.call("createUser", options)["result"]["error"]
    assert (error["error"], error["reason"]) == (400, "Match failed")
