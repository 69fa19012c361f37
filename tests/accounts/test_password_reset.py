"""forgotPassword mails a token that resetPassword takes (4.2), through Django's token
generator and its email backend (here, files this test reads)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dddp.accounts.models import LoginToken
from dddp.accounts.tokens import hash_token
from tests.accounts.test_login import AMBIGUOUS, digest, login, new_user
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def mail_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="module")
def mailing_server(start_module_server: Callable[..., ServerProcess], mail_folder: Path) -> ServerProcess:
    return start_module_server(
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        DJANGO_EMAIL_FILE_PATH=str(mail_folder),
        DDDP_PASSWORD_RESET_URL="https://app.example.com/#/reset-password/{token}",
        DDDP_LOGIN_FAILURES="50",
    ).wait_until_listening()


@pytest.fixture
def client(mailing_server: ServerProcess) -> Iterator[DDPClient]:
    with DDPClient(mailing_server.ws_url) as ddp:
        ddp.connect()
        yield ddp


def mails_to(folder: Path, address: str) -> list[str]:
    texts = (path.read_text() for path in sorted(folder.iterdir()))
    return [text for text in texts if f"To: {address}" in text]


def reset_token_in(mail: str) -> str:
    match = re.search(r"https://app\.example\.com/#/reset-password/(\S+)", mail)
    assert match, mail
    return match.group(1)


def test_a_forgotten_password_is_reset_with_the_mailed_token_which_logs_in(
    client: DDPClient, mail_folder: Path
) -> None:
    user = new_user(email=f"{uuid.uuid4().hex[:8]}@example.com")
    other = login(client, user)["result"]["result"]["token"]  # a login elsewhere: ends with the reset
    reply = client.call("forgotPassword", {"email": user.email.upper()}, id="forgot")
    assert reply["result"] == {"msg": "result", "id": "forgot"}
    [mail] = mails_to(mail_folder, user.email)
    token = reset_token_in(mail)
    with DDPClient(client.url) as fresh:
        fresh.connect()
        result = fresh.call("resetPassword", token, digest("brand new"), id="reset")["result"]["result"]
        assert result["id"] == str(user.pk) and result["type"] == "password"
        again = fresh.call("resetPassword", token, digest("once more"), id="again")["result"]["error"]
        assert (again["error"], again["reason"]) == (403, "Token expired")  # a token works once
    assert client.recv_close()[0] == 1000  # the login before the reset is over
    assert not LoginToken.objects.filter(hashed_token=hash_token(other)).exists()
    with DDPClient(client.url) as later:
        later.connect()
        assert login(later, user)["result"]["error"]["reason"] == AMBIGUOUS  # the old password
        assert login(later, user, digest("brand new"), id="new")["result"]["result"]["id"] == str(user.pk)


def test_an_unknown_email_gets_the_same_answer_and_no_mail(client: DDPClient, mail_folder: Path) -> None:
    address = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    reply = client.call("forgotPassword", {"email": address}, id="forgot")
    assert reply["result"] == {"msg": "result", "id": "forgot"}
    assert mails_to(mail_folder, address) == []


@pytest.mark.parametrize("token", ["nonsense", "MQ.bad-token", "", "...."])
def test_a_token_that_does_not_work_is_403_token_expired(client: DDPClient, token: str) -> None:
    error = client.call("resetPassword", token, digest("x"))["result"]["error"]
    assert (error["error"], error["reason"]) == (403, "Token expired")


@pytest.mark.parametrize("params", [[{"mail": "a@b.c"}], [{"email": 5}], ["a@b.c"], []])
def test_malformed_forgot_password_options_are_400(client: DDPClient, params: list) -> None:
    assert client.call("forgotPassword", *params)["result"]["error"]["error"] == 400
