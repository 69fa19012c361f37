"""A browser logged in to the Django site is logged in over DDP by its session cookie,
only from a page whose origin Django trusts (no cross-site WebSocket hijacking)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from tests.accounts.test_login import new_user
from tests.ddp_client import DDPClient
from tests.server.test_origins import xhr_polling_call
from tests.server_process import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def site(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DDDP_ALLOWED_ORIGINS="http://meteor.example:3000",
    ).wait_until_listening()


def session_cookie(user: Any) -> str:
    """The cookie of a browser logged in to the Django site as `user`."""
    browser = Client()
    browser.force_login(user)
    return f"sessionid={browser.cookies['sessionid'].value}"


def websocket_user(server: ServerProcess, cookie: str, origin: str) -> tuple[Any, list[str]]:
    """Who the connection is, and the users documents it got, when it opens with `cookie` from `origin`."""
    with DDPClient(server.ws_url, header=[f"Cookie: {cookie}"], origin=origin) as ddp:
        ddp.connect()
        reply = ddp.call("whoami", id="who")
        return reply["result"].get("result"), list(ddp.collections.get("users", {}))


def own_origin(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}"


def test_the_sites_own_page_is_logged_in_as_its_django_session(site: ServerProcess) -> None:
    user = new_user()
    who, users = websocket_user(site, session_cookie(user), own_origin(site))
    assert who == user.pk
    assert users == [str(user.pk)]  # Meteor.user() is there from the start


def test_a_page_elsewhere_never_acts_with_the_session_even_if_it_may_connect(site: ServerProcess) -> None:
    user = new_user()
    who, users = websocket_user(site, session_cookie(user), "http://meteor.example:3000")
    assert who is None and users == []


@pytest.mark.parametrize("cookie", ["sessionid=forged", "othercookie=1", "sessionid="])
def test_a_cookie_naming_no_session_logs_nobody_in(site: ServerProcess, cookie: str) -> None:
    assert websocket_user(site, cookie, own_origin(site)) == (None, [])


def test_a_session_from_before_a_password_change_logs_nobody_in(site: ServerProcess) -> None:
    """As Django refuses it for a request (the session's auth hash no longer matches)."""
    user = new_user()
    cookie = session_cookie(user)
    user.set_password("changed")
    user.save()
    assert websocket_user(site, cookie, own_origin(site)) == (None, [])


def sockjs_user(server: ServerProcess, cookie: str, origin: str) -> Any:
    """Who an xhr-polling session is whose requests carry `cookie` from `origin`."""
    return xhr_polling_call(server, "whoami", Origin=origin, Cookie=cookie).get("result")


def test_sockjs_sessions_follow_the_same_rule(site: ServerProcess) -> None:
    user = new_user()
    cookie = session_cookie(user)
    assert sockjs_user(site, cookie, own_origin(site)) == user.pk
    assert sockjs_user(site, cookie, "http://meteor.example:3000") is None
