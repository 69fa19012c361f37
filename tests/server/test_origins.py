"""Hosts and origins (issue 9, attack 10): cross-site WebSocket hijacking is refused.

The policy's decisions are tested in-process against Django's settings; then a
real server shows each refusal on the wire (before the WebSocket's 101, on every
SockJS transport) and that a page Django does not trust never acts with the
user's cookies.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from dddp.server.origins import OriginPolicy, Refusal
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

CONNECT = json.dumps({"msg": "connect", "version": "1", "support": ["1"]})


def environ(host: str = "app.example", upgrade: bool = True, **headers: str) -> dict[str, Any]:
    """A request's environ as pywsgi makes it: a WebSocket upgrade unless `upgrade` is False."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SERVER_NAME": "server.internal",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": host,
    }
    if upgrade:
        env["HTTP_UPGRADE"] = "websocket"
    env.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    return env


def refusal(policy: OriginPolicy, env: dict[str, Any]) -> str | None:
    try:
        policy.check(env)
    except Refusal as refused:
        return refused.status
    return None


# --- the policy, in-process ---------------------------------------------------------


@override_settings(ALLOWED_HOSTS=["app.example"], DEBUG=False)
def test_the_host_must_be_in_allowed_hosts_as_django_checks_it() -> None:
    policy = OriginPolicy([])
    assert refusal(policy, environ("app.example")) is None
    assert refusal(policy, environ("app.example:8000")) is None
    assert refusal(policy, environ("evil.example")) == "400 Bad Request"
    assert refusal(policy, environ("app.example.evil.example")) == "400 Bad Request"
    with override_settings(ALLOWED_HOSTS=["*"]):
        assert refusal(policy, environ("evil.example")) is None


@override_settings(ALLOWED_HOSTS=[], DEBUG=True)
def test_in_debug_without_allowed_hosts_only_localhost_names_are_served() -> None:
    policy = OriginPolicy([])
    assert refusal(policy, environ("localhost:8000")) is None
    assert refusal(policy, environ("127.0.0.1:8000")) is None
    assert refusal(policy, environ("evil.example")) == "400 Bad Request"


@override_settings(USE_X_FORWARDED_HOST=True, ALLOWED_HOSTS=["app.example"])
def test_behind_a_proxy_the_forwarded_host_is_checked_when_django_is_told_to() -> None:
    policy = OriginPolicy([])
    assert refusal(policy, environ("127.0.0.1", X_FORWARDED_HOST="app.example")) is None
    assert refusal(policy, environ("app.example", X_FORWARDED_HOST="evil.example")) == "400 Bad Request"


@override_settings(ALLOWED_HOSTS=["app.example"], CSRF_TRUSTED_ORIGINS=["https://*.trusted.example"])
def test_pages_of_the_site_and_of_origins_django_trusts_may_connect_others_not() -> None:
    policy = OriginPolicy([])
    assert refusal(policy, environ(ORIGIN="http://app.example")) is None
    assert refusal(policy, environ(ORIGIN="https://app.example")) == "403 Forbidden"  # another scheme
    assert refusal(policy, environ(ORIGIN="http://app.example:3000")) == "403 Forbidden"  # another port
    assert refusal(policy, environ(ORIGIN="https://www.trusted.example")) is None
    assert refusal(policy, environ(ORIGIN="http://www.trusted.example")) == "403 Forbidden"
    for origin in ("http://evil.example", "null", "file://", "http://app.example.evil.example"):
        assert refusal(policy, environ(ORIGIN=origin)) == "403 Forbidden", origin


@override_settings(ALLOWED_HOSTS=["app.example"], SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_the_sites_own_origin_is_https_behind_a_tls_proxy_django_is_told_of() -> None:
    policy = OriginPolicy([])
    assert refusal(policy, environ(ORIGIN="https://app.example", X_FORWARDED_PROTO="https")) is None
    assert refusal(policy, environ(ORIGIN="http://app.example", X_FORWARDED_PROTO="https")) == "403 Forbidden"


@override_settings(ALLOWED_HOSTS=["app.example"])
def test_clients_that_are_not_web_pages_send_no_origin_and_may_connect() -> None:
    assert refusal(OriginPolicy([]), environ()) is None


@override_settings(ALLOWED_HOSTS=["app.example"])
def test_dddp_allowed_origins_adds_origins_exact_or_by_subdomain_or_any() -> None:
    policy = OriginPolicy(["http://localhost:3000", "https://*.meteor.example", "null"])
    assert refusal(policy, environ(ORIGIN="http://localhost:3000")) is None
    assert refusal(policy, environ(ORIGIN="https://app.meteor.example")) is None
    assert refusal(policy, environ(ORIGIN="null")) is None
    assert refusal(policy, environ(ORIGIN="http://localhost:3001")) == "403 Forbidden"
    assert refusal(policy, environ(ORIGIN="https://meteor.example.evil.example")) == "403 Forbidden"
    assert refusal(OriginPolicy(["*"]), environ(ORIGIN="http://evil.example")) is None
    # The Host check holds whatever the origins.
    assert refusal(OriginPolicy(["*"]), environ("evil.example", ORIGIN="http://evil.example")) is not None


@override_settings(ALLOWED_HOSTS=["app.example"], CSRF_TRUSTED_ORIGINS=["https://shop.example"])
def test_cookies_count_only_from_pages_django_trusts() -> None:
    policy = OriginPolicy(["*", "http://localhost:3000"])
    assert policy.trusts_cookies(environ(ORIGIN="http://app.example"))
    assert policy.trusts_cookies(environ(ORIGIN="https://shop.example"))
    # Allowed to connect, but never with the user's cookies:
    assert not policy.trusts_cookies(environ(ORIGIN="http://localhost:3000"))
    assert not policy.trusts_cookies(environ(ORIGIN="http://evil.example"))
    # A WebSocket without Origin is no browser page: its cookies are its own.
    assert policy.trusts_cookies(environ())


@override_settings(ALLOWED_HOSTS=["app.example"])
def test_a_request_a_page_loads_without_origin_is_judged_by_its_referer() -> None:
    """SockJS's jsonp and htmlfile transports are scripts and iframes: no Origin header."""
    policy = OriginPolicy([])
    same = environ(upgrade=False, REFERER="http://app.example/books/")
    other = environ(upgrade=False, REFERER="http://evil.example/page")
    assert refusal(policy, same) is None and policy.trusts_cookies(same)
    assert refusal(policy, other) == "403 Forbidden" and not policy.trusts_cookies(other)
    # Neither header: it may connect (no page can be named), but its cookies do not count.
    bare = environ(upgrade=False)
    assert refusal(policy, bare) is None and not policy.trusts_cookies(bare)


# --- on the wire ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def origins_server(start_module_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_module_server(
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://trusted.example",
        DDDP_ALLOWED_ORIGINS="http://meteor.example:3000",
    ).wait_until_listening()


def upgrade(server: ServerProcess, path: str = "/websocket", **headers: str) -> tuple[int, str]:
    """A WebSocket upgrade request: the status, and the body if refused."""
    fields = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        **headers,
    }
    status, _, body = request(server, "GET", path, **fields)
    return status, body


def request(
    server: ServerProcess, method: str, path: str, body: str | None = None, **headers: str
) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/websocket", "/sockjs/websocket", "/sockjs/000/abcdefgh/websocket"])
def test_an_upgrade_from_another_host_or_page_is_refused_before_the_101(
    origins_server: ServerProcess, path: str
) -> None:
    status, body = upgrade(origins_server, path, Host="evil.example")
    assert status == 400 and "ALLOWED_HOSTS" in body
    for origin in ("http://evil.example", "null", "file://"):
        status, body = upgrade(origins_server, path, Origin=origin)
        assert status == 403 and "DDDP_ALLOWED_ORIGINS" in body, origin
    own = f"http://127.0.0.1:{origins_server.port}"
    for origin in (own, "https://trusted.example", "http://meteor.example:3000"):
        assert upgrade(origins_server, path, Origin=origin)[0] == 101, origin
    assert upgrade(origins_server, path)[0] == 101  # no Origin: no page


def test_refusals_are_logged_once_per_interval_without_a_traceback(origins_server: ServerProcess) -> None:
    start = len(origins_server.log)
    for _ in range(20):
        upgrade(origins_server, Origin="http://flood.example")
    with DDPClient(origins_server.ws_url) as ddp:  # a marker: the log has caught up
        ddp.connect()
    lines = origins_server.log[start:]
    assert not any("Traceback" in line for line in lines)
    assert sum("refused a connection" in line for line in lines) <= 1


def test_sockjs_info_and_sessions_from_a_page_not_allowed_are_refused(origins_server: ServerProcess) -> None:
    evil = {"Origin": "http://evil.example"}
    assert request(origins_server, "GET", "/sockjs/info", **evil)[0] == 403
    assert request(origins_server, "OPTIONS", "/sockjs/info", **evil)[0] == 403
    assert request(origins_server, "GET", "/sockjs/info", Host="evil.example")[0] == 400
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert request(origins_server, "POST", base + "/xhr", **evil)[0] == 403
    assert request(origins_server, "POST", base + "/xhr_streaming", **evil)[0] == 403
    assert request(origins_server, "GET", base + "/eventsource", **evil)[0] == 403
    referred = {"Referer": "http://evil.example/page.html"}  # scripts and iframes send no Origin
    assert request(origins_server, "GET", base + "/jsonp?c=f", **referred)[0] == 403
    assert request(origins_server, "GET", base + "/htmlfile?c=f", **referred)[0] == 403
    # None of them made a session: a send to it finds nothing.
    assert request(origins_server, "POST", base + "/xhr_send", '["x"]')[0] == 404
    # An allowed page's CORS request is answered and its origin echoed.
    status, headers, _ = request(origins_server, "GET", "/sockjs/info", Origin="http://meteor.example:3000")
    assert status == 200 and headers["access-control-allow-origin"] == "http://meteor.example:3000"


def test_a_session_takes_no_messages_from_a_page_not_allowed(origins_server: ServerProcess) -> None:
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert request(origins_server, "POST", base + "/xhr")[2] == "o\n"
    method = json.dumps({"msg": "method", "method": "add", "params": [1, 2], "id": "m"})
    refused = request(
        origins_server, "POST", base + "/xhr_send", json.dumps([CONNECT, method]), Origin="null"
    )
    assert refused[0] == 403
    assert request(origins_server, "POST", base + "/xhr_send", json.dumps([CONNECT]))[0] == 204
    reply = request(origins_server, "POST", base + "/xhr")[2]
    assert reply.startswith("a[") and '\\"connected\\"' in reply  # connected, and nothing of the method


def cookie_seen(server: ServerProcess, origin: str | None) -> str | None:
    """What a method sees of the Cookie header sent with the WebSocket upgrade from `origin`."""
    header = ["Cookie: sessionid=s3cret"]
    with DDPClient(server.ws_url, header=header, origin=origin, suppress_origin=origin is None) as ddp:
        ddp.connect()
        result: str | None = ddp.call("connection_info")["result"]["result"]["cookie"]
        return result


def test_only_pages_django_trusts_act_with_the_users_cookies(origins_server: ServerProcess) -> None:
    own = f"http://127.0.0.1:{origins_server.port}"
    assert cookie_seen(origins_server, own) == "sessionid=s3cret"
    assert cookie_seen(origins_server, "https://trusted.example") == "sessionid=s3cret"
    assert cookie_seen(origins_server, None) == "sessionid=s3cret"  # not a web page: its own cookies
    # DDDP_ALLOWED_ORIGINS lets a page connect, not use the user's cookies.
    assert cookie_seen(origins_server, "http://meteor.example:3000") is None


def xhr_polling_call(server: ServerProcess, method: str, **headers: str) -> dict[str, Any]:
    """The result message of `method` called first thing by a new xhr-polling session
    whose every request carries `headers`."""
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    assert request(server, "POST", base + "/xhr", **headers)[2] == "o\n"
    call = json.dumps({"msg": "method", "method": method, "params": [], "id": "c"})
    assert request(server, "POST", base + "/xhr_send", json.dumps([CONNECT, call]), **headers)[0] == 204
    for _ in range(10):
        frame = request(server, "POST", base + "/xhr", **headers)[2]
        for text in json.loads(frame[1:]) if frame.startswith("a[") else []:
            message: dict[str, Any] = json.loads(text)
            if message.get("msg") == "result":
                return message
    raise AssertionError("no result")


def sockjs_cookie_seen(server: ServerProcess, origin: str) -> str | None:
    """What a method sees of the Cookie header of an xhr-polling session's requests."""
    result = xhr_polling_call(server, "connection_info", Origin=origin, Cookie="sessionid=s3cret")
    cookie: str | None = result["result"]["cookie"]
    return cookie


def test_a_sockjs_session_has_the_cookies_only_of_a_page_django_trusts(origins_server: ServerProcess) -> None:
    assert sockjs_cookie_seen(origins_server, f"http://127.0.0.1:{origins_server.port}") == "sessionid=s3cret"
    assert sockjs_cookie_seen(origins_server, "http://meteor.example:3000") is None
