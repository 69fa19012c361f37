"""Real npm DDP clients log in under Node (4.1; spec section 7): ddp-login with a password
digest, simpleddp-plugin-login with a plaintext password, and both resume with the token."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model

from tests.nodejs import requires_node, run_node
from tests.server_process import ServerProcess

pytestmark = [requires_node, pytest.mark.django_db(transaction=True)]

User = get_user_model()

DDP_LOGIN_SCRIPT = r"""
const DDPClient = require('ddp');
const login = require('ddp-login');
const [port, username, password] = process.argv.slice(1);
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail('timed out'), 15000);
const open = (then) => {
  const client = new DDPClient(
    {host: '127.0.0.1', port: Number(port), autoReconnect: false, maintainCollections: true});
  client.connect((error) => { if (error) fail(error); then(client); });
};
const out = {};
open((first) => {
  login.loginWithUsername(first, username, password, (error, result) => {
    if (error) fail(error);
    out.login = result;
    first.call('whoami', [], (error, who) => {
      out.who = who;
      out.users = first.collections.users;
      first.close();
      open((second) => {
        login.loginWithToken(second, result.token, (error, resumed) => {
          if (error) fail(error);
          out.resumed = resumed;
          second.call('whoami', [], (error, who) => {
            out.resumedWho = who;
            login.loginWithUsername(second, username, 'wrong password', (error) => {
              out.refused = error;
              second.close();
              console.log(JSON.stringify(out));
              process.exit(0);
            });
          });
        });
      });
    });
  });
});
"""

SIMPLEDDP_LOGIN_SCRIPT = r"""
const simpleDDP = require('simpleddp');
const {simpleDDPLogin} = require('simpleddp-plugin-login');
const ws = require('ws');
const [port, username, password] = process.argv.slice(1);
(async () => {
  setTimeout(() => { console.error('timed out'); process.exit(1); }, 15000);
  const endpoint = `ws://127.0.0.1:${port}/websocket`;
  const server = new simpleDDP({endpoint, SocketConstructor: ws, reconnectInterval: 100}, [simpleDDPLogin]);
  await server.connect();
  const login = await server.login({user: {username}, password});
  const who = await server.call('whoami');
  const users = server.collection('users').fetch();
  // A lost connection: the plugin logs in again with its token as soon as it is back.
  const resumed = new Promise((resolve) => server.on('loginResume', resolve));
  server.ddpConnection.socket.rawSocket.terminate();
  const resume = await resumed;
  const whoAfterReconnect = await server.call('whoami');
  await server.logout();
  const whoAfterLogout = await server.call('whoami');
  await server.disconnect();
  console.log(JSON.stringify(
    {login, who, users, resume, whoAfterReconnect, whoAfterLogout: whoAfterLogout ?? null}));
  process.exit(0);
})().catch((error) => { console.error(error); process.exit(1); });
"""


def make_user(password: str) -> object:
    name = f"node-{uuid.uuid4().hex[:8]}"
    return User.objects.create_user(name, f"{name}@example.com", password)


def test_ddp_login_logs_in_with_a_digest_and_resumes_with_the_token(server: ServerProcess) -> None:
    user = make_user("node pw")
    out = json.loads(run_node(DDP_LOGIN_SCRIPT, str(server.port), user.username, "node pw").stdout)
    assert out["login"]["id"] == str(user.pk) and out["login"]["type"] == "password"
    assert out["who"] == user.pk
    assert out["users"] == {
        str(user.pk): {
            "_id": str(user.pk),
            "username": user.username,
            "emails": [{"address": user.email, "verified": False}],
            "profile": {},
        }
    }
    assert out["resumed"]["id"] == str(user.pk) and out["resumed"]["type"] == "resume"
    assert out["resumed"]["token"] == out["login"]["token"]
    assert out["resumedWho"] == user.pk
    assert out["refused"]["error"] == 403


def test_simpleddp_logs_in_with_a_plaintext_password_and_resumes_after_a_reconnect(
    server: ServerProcess,
) -> None:
    user = make_user("plain pw")
    out = json.loads(run_node(SIMPLEDDP_LOGIN_SCRIPT, str(server.port), user.username, "plain pw").stdout)
    assert out["login"]["id"] == str(user.pk) and out["login"]["type"] == "password"
    assert out["who"] == user.pk
    assert [doc["username"] for doc in out["users"]] == [user.username]
    assert out["resume"]["type"] == "resume" and out["resume"]["id"] == str(user.pk)
    assert out["whoAfterReconnect"] == user.pk
    assert out["whoAfterLogout"] is None
