"""Real npm DDP clients under Node against a real server (spec section 7).

The server pings every 0.3 s and drops a client silent for 0.3 s more, so a
client that did not answer pings could not finish these scripts.
"""

from __future__ import annotations

import json

import pytest

from tests.nodejs import requires_node, run_node
from tests.server_process import ServerProcess

pytestmark = requires_node

DDP_SCRIPT = r"""
const DDPClient = require('ddp');
const port = Number(process.argv[1]);
const client = new DDPClient({host: '127.0.0.1', port, autoReconnect: false, maintainCollections: true});
const out = {serverPings: 0, events: []};
client.on('message', (text) => {
  const message = JSON.parse(text);
  if (message.msg === 'ping') out.serverPings += 1;
  if (message.msg === 'pong') out.pong = message;
});
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail('timed out: ' + JSON.stringify(out)), 15000);
client.connect((error) => {
  if (error) fail(error);
  out.session = client.session;
  client._send({msg: 'ping', id: 'from-node'});
  // Idle for several heartbeat periods: only a client answering pings survives.
  setTimeout(() => {
    client.call('add', [2, 3], (err, result) => {
      out.events.push('result');
      out.error = err || null; out.result = result;
    }, () => {
      out.events.push('updated');
      client.call('no_such_method', [], (err) => {
        out.unknown = err;
        client.subscribe('AllNotes', [], () => {
          out.ready = true;
          client.close();
          console.log(JSON.stringify(out));
          process.exit(0);
        });
      });
    });
  }, 1500);
});
"""

SIMPLEDDP_SCRIPT = r"""
const simpleDDP = require('simpleddp');
const ws = require('ws');
const port = process.argv[1];
(async () => {
  setTimeout(() => { console.error('timed out'); process.exit(1); }, 15000);
  const endpoint = `ws://127.0.0.1:${port}/websocket`;
  const server = new simpleDDP({endpoint, SocketConstructor: ws, reconnectInterval: 100000});
  await server.connect();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const sum = await server.call('add', 20, 22);
  const echoed = await server.call('echo', {when: new Date(86400000), bytes: new Uint8Array([1, 2, 3])});
  let unknown = null;
  try { await server.call('no_such_method'); } catch (error) { unknown = error; }
  const sub = server.subscribe('AllNotes');
  await sub.ready();
  await server.disconnect();
  console.log(JSON.stringify({
    sum,
    when: echoed[0].when instanceof Date ? echoed[0].when.getTime() : null,
    bytes: Array.from(echoed[0].bytes || []),
    unknown,
  }));
  process.exit(0);
})().catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.fixture(scope="module")
def pinging_server(start_server) -> ServerProcess:  # type: ignore[no-untyped-def]
    return start_server(DDDP_HEARTBEAT_INTERVAL="0.3", DDDP_HEARTBEAT_TIMEOUT="0.3").wait_until_listening()


def test_node_ddp_client_connects_pings_and_calls_methods(pinging_server: ServerProcess) -> None:
    out = json.loads(run_node(DDP_SCRIPT, str(pinging_server.port)).stdout)
    assert len(out["session"]) == 17
    assert out["pong"] == {"msg": "pong", "id": "from-node"}
    assert out["serverPings"] >= 2
    assert out["result"] == 5 and out["error"] is None
    assert out["events"] == ["result", "updated"]
    assert out["unknown"]["error"] == 404
    assert out["ready"] is True


def test_simpleddp_calls_methods_with_ejson_values(pinging_server: ServerProcess) -> None:
    out = json.loads(run_node(SIMPLEDDP_SCRIPT, str(pinging_server.port)).stdout)
    assert out["sum"] == 42
    assert out["when"] == 86400000
    assert out["bytes"] == [1, 2, 3]
    assert out["unknown"]["error"] == 404
    assert out["unknown"]["reason"] == "Method 'no_such_method' not found"
