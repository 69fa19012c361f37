"""dddp.accounts against a custom user model (4): tests.customusersapp.Member, whose
username is its email, whose key is a 17-character Meteor id, and which holds whether
its email is verified, so that `verifyEmail` is offered (4.2).

The server runs with tests/settings_custom_users.py on a database of its own,
migrated for that model; users made through Django come from `manage.py shell`
with those settings, as a project's admin or `createsuperuser` would make them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.accounts.test_login import AMBIGUOUS, digest
from tests.accounts.test_password_reset import mails_to
from tests.databases import scratch_database
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

SETTINGS = "tests.settings_custom_users"
VERIFY_URL = "https://app.example.com/#/verify-email/{token}"


@pytest.fixture(scope="module")
def custom_users_database(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    with scratch_database("dddp_custom_users", django_db_blocker) as url:
        django_admin(url, "migrate", "--no-input", "--verbosity", "0")
        yield url


def django_admin(url: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "django", *args, "--settings", SETTINGS],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def member_made_through_django(url: str, password: str = "s3cret pw") -> tuple[str, str]:
    """A Member made with `create_user` (Django's `set_password`): its (id, email)."""
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    out = django_admin(
        url,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        f"print(get_user_model().objects.create_user({email!r}, {password!r}).pk)",
    )
    return out.split()[-1], email  # after shell's "objects imported" line (Django 5.2)


@pytest.fixture(scope="module")
def mail_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="module")
def members_server(
    start_module_server: Callable[..., ServerProcess], custom_users_database: str, mail_folder: Path
) -> ServerProcess:
    return start_module_server(
        "--settings",
        SETTINGS,
        "127.0.0.1:0",
        DATABASE_URL=custom_users_database,
        DDDP_ACCOUNTS_SIGNUP="1",
        DDDP_ACCOUNTS_SEND_VERIFICATION_EMAIL="1",
        DDDP_VERIFY_EMAIL_URL=VERIFY_URL,
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        DJANGO_EMAIL_FILE_PATH=str(mail_folder),
    ).wait_until_listening()


@pytest.fixture
def client(members_server: ServerProcess) -> Iterator[DDPClient]:
    with DDPClient(members_server.ws_url) as ddp:
        ddp.connect()
        yield ddp


def verification_token_in(mail: str) -> str:
    match = re.search(r"https://app\.example\.com/#/verify-email/(\S+)", mail)
    assert match, mail
    return match.group(1)


def sign_up(client: DDPClient, email: str) -> dict[str, Any]:
    return client.call("createUser", {"email": email, "password": digest("s3cret pw")}, id="signup")


def test_a_member_made_through_django_logs_in_with_a_digest_and_sees_its_document(
    client: DDPClient, custom_users_database: str
) -> None:
    member_id, email = member_made_through_django(custom_users_database)
    assert len(member_id) == 17  # a Meteor id, not an integer
    reply = client.call("login", {"user": {"email": email.upper()}, "password": digest("s3cret pw")})
    assert reply["result"]["result"]["id"] == member_id
    # The email is the username, so the document has no other (as a Meteor email-only account).
    assert client.collections["users"] == {
        member_id: {"emails": [{"address": email, "verified": False}], "profile": {}}
    }
    wrong = client.call("login", {"user": {"email": email}, "password": digest("nope")}, id="wrong")
    assert wrong["result"]["error"]["reason"] == AMBIGUOUS


def test_a_resume_token_of_a_member_logs_in_elsewhere_and_dies_with_logout(
    client: DDPClient, custom_users_database: str
) -> None:
    member_id, email = member_made_through_django(custom_users_database)
    token = client.call("login", {"user": {"email": email}, "password": "s3cret pw"})["result"]["result"][
        "token"
    ]
    with DDPClient(client.url) as other:
        other.connect()
        resumed = other.call("login", {"resume": token}, id="resume")["result"]["result"]
        assert (resumed["id"], resumed["type"]) == (member_id, "resume")
        client.call("logout", id="logout")
        assert other.recv_close()[0] == 1000  # the token died: its other connection closed
    stored = _query(
        custom_users_database, "SELECT count(*) FROM dddp_accounts_logintoken WHERE user_id = %s", member_id
    )
    assert stored == [(0,)]


def test_a_signup_mails_a_link_that_verifies_the_address_live_and_logs_in(
    client: DDPClient, mail_folder: Path
) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    signed_up = sign_up(client, email)["result"]["result"]
    member_id = signed_up["id"]
    assert client.collections["users"][member_id]["emails"] == [{"address": email, "verified": False}]
    [mail] = mails_to(mail_folder, email)
    token = verification_token_in(mail)
    # The link opens in another tab of the same browser, already logged in (Meteor keeps
    # the token in localStorage), so only the change itself can tell it the news.
    with DDPClient(client.url) as clicked:
        clicked.connect()
        clicked.call("login", {"resume": signed_up["token"]}, id="resume")
        result = clicked.call("verifyEmail", token, id="verify")["result"]["result"]
        assert (result["id"], result["type"]) == (member_id, "password") and len(result["token"]) == 43
        clicked.wait_until(
            lambda: clicked.collections["users"][member_id]["emails"][0]["verified"] is True,
            lambda: f"never verified: {clicked.collections['users']}",
        )
        again = clicked.call("verifyEmail", token, id="again")["result"]["error"]
        assert (again["error"], again["reason"]) == (403, "Verify email link expired")  # once
    client.wait_until(
        lambda: client.collections["users"][member_id]["emails"] == [{"address": email, "verified": True}],
        lambda: f"never verified: {client.collections['users']}",
    )
    with DDPClient(client.url) as fresh:  # and a new login with the new token
        fresh.connect()
        assert (
            fresh.call("login", {"resume": result["token"]}, id="resume")["result"]["result"]["id"]
            == member_id
        )


def test_a_verification_token_stops_working_when_the_address_changes(
    client: DDPClient, mail_folder: Path, custom_users_database: str
) -> None:
    email = f"moving-{uuid.uuid4().hex[:8]}@example.com"
    member_id = sign_up(client, email)["result"]["result"]["id"]
    [mail] = mails_to(mail_folder, email)
    _query(
        custom_users_database,
        "UPDATE customusersapp_member SET email = %s WHERE id = %s RETURNING id",
        f"moved-{email}",
        member_id,
    )
    refused = client.call("verifyEmail", verification_token_in(mail), id="verify")["result"]["error"]
    assert (refused["error"], refused["reason"]) == (403, "Verify email link expired")
    for token in ("", "not-a-token", f"{member_id}.abc-def"):
        error = client.call("verifyEmail", token, id=f"bad {token}")["result"]["error"]
        assert (error["error"], error["reason"]) == (403, "Verify email link expired")
    error = client.call("verifyEmail", {"token": "x"}, id="typed")["result"]["error"]
    assert error["error"] == 400


def test_a_signup_with_a_username_is_refused_where_the_email_is_the_username(client: DDPClient) -> None:
    reply = client.call(
        "createUser", {"username": "bob", "email": "bob@example.com", "password": digest("pw")}, id="signup"
    )
    assert reply["result"]["error"]["error"] == 400
    assert "no username" in reply["result"]["error"]["details"]


def test_django_s_own_user_model_is_not_offered_verify_email(
    client: DDPClient, server: ServerProcess
) -> None:
    """Django's User has no field for it (DDDP_ACCOUNTS_EMAIL_VERIFIED_FIELD): no such method."""
    with DDPClient(server.ws_url) as stock:
        stock.connect()
        error = stock.call("verifyEmail", "a token", id="verify")["result"]["error"]
        assert (error["error"], error["reason"]) == (404, "Method 'verifyEmail' not found")


def _query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()
