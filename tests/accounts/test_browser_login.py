"""A Meteor-style login from Chromium through SockJS (issue 10, item 12), from another origin.

The page hashes the password as Meteor's client does (SHA-256 of its UTF-8, in
the browser's own crypto), logs in with the digest, sees its user document
arrive before the login's result, then opens a second SockJS connection and
resumes with the token it was given (what a Meteor app does after a reload).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.accounts.test_login import new_user
from tests.server.test_browser import CLIENT, chromium, page_server, pytestmark, wait_for
from tests.server.test_browser import django_beside_playwright_loop as django_beside_playwright_loop
from tests.server_process import ServerProcess

__all__ = ["pytestmark"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script src="SCRIPT"></script></head>
<body><script>
// DDP over one SockJS connection: `call` answers a method's messages up to its `updated`.
function open(url, transport) {
  return new Promise((resolve, reject) => {
    const sock = new SockJS(url, null, {transports: [transport]});
    const seen = [];
    const waiting = [];
    const send = (message) => sock.send(JSON.stringify(message));
    const call = (method, params, id) => new Promise((done) => {
      const start = seen.length;
      waiting.push(() => {
        const mine = seen.slice(start);
        if (mine.some((m) => m.msg === 'updated' && m.methods.includes(id))) { done(mine); return true; }
        return false;
      });
      send({msg: 'method', method, params, id});
    });
    sock.onopen = () => send({msg: 'connect', version: '1', support: ['1']});
    sock.onclose = (event) => reject(new Error('closed ' + event.code + ' ' + event.reason));
    sock.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.msg === 'ping') { send({msg: 'pong'}); return; }
      seen.push(message);
      if (message.msg === 'connected') resolve({sock, call});
      for (let i = waiting.length - 1; i >= 0; i--) if (waiting[i]()) waiting.splice(i, 1);
    };
  });
}

async function digest(password) {  // Meteor's Accounts._hashPassword
  const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(password));
  return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('');
}

window.run = async (url, transport, username, password) => {
  const first = await open(url, transport);
  const password_ = {digest: await digest(password), algorithm: 'sha-256'};
  const login = await first.call('login', [{user: {username}, password: password_}], 'login');
  const result = login.find((m) => m.msg === 'result');
  const who = (await first.call('whoami', [], 'who')).find((m) => m.msg === 'result').result;
  first.sock.close();
  const second = await open(url, transport);
  const resumed = await second.call('login', [{resume: result.result.token}], 'resume');
  const whoAfter = (await second.call('whoami', [], 'who2')).find((m) => m.msg === 'result').result;
  second.sock.close();
  window.outcome = {
    kinds: login.map((m) => m.msg + (m.collection ? ':' + m.collection : '')),
    login: result.result,
    who,
    resumed: resumed.find((m) => m.msg === 'result').result,
    whoAfter,
  };
};
</script></body></html>
"""


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    page = PAGE.replace("SCRIPT", CLIENT.path)
    files = {
        "/": (page.encode(), "text/html; charset=utf-8"),
        CLIENT.path: (CLIENT.file.read_bytes(), "application/javascript"),
    }
    with page_server(files) as origin:
        yield origin


@pytest.fixture(scope="module")
def accounts_server(start_module_server: Callable[..., ServerProcess], page_origin: str) -> ServerProcess:
    return start_module_server(DDDP_ALLOWED_ORIGINS=page_origin).wait_until_listening()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module", autouse=True)
def django_beside_playwright() -> Iterator[None]:
    with django_beside_playwright_loop():
        yield


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
def test_a_browser_logs_in_with_a_digest_and_resumes_with_its_token(
    browser: Any, page_origin: str, accounts_server: ServerProcess, transport: str
) -> None:
    user = new_user("browser pässword")
    page = browser.new_page()
    try:
        page.goto(page_origin + "/")
        url = f"http://127.0.0.1:{accounts_server.port}/sockjs"
        page.evaluate(
            "([url, transport, name, pw]) => { window.run(url, transport, name, pw) "
            ".catch((e) => { window.failure = String(e); }); }",
            [url, transport, user.username, "browser pässword"],
        )
        outcome = wait_for(page, "window.outcome || (window.failure && {failure: window.failure})")
    finally:
        page.close()
    assert "failure" not in outcome, outcome
    assert outcome["kinds"] == ["added:users", "result", "updated"]  # Meteor.user() before the callback
    assert outcome["login"]["id"] == str(user.pk) and outcome["login"]["type"] == "password"
    assert outcome["who"] == user.pk
    assert outcome["resumed"]["type"] == "resume" and outcome["resumed"]["id"] == str(user.pk)
    assert outcome["whoAfter"] == user.pk
