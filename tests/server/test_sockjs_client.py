"""The reference SockJS client (npm sockjs-client 1.6.1, what current Meteor bundles) under Node.

Each transport dddp serves so far is forced in turn. Through it, the client
connects, subscribes, receives a change this test process commits, calls a
method, and stays connected over several heartbeat periods (the server pings
every 0.3 s and drops a client silent 0.3 s more; the script answers pings, as
Meteor's client does).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable

import pytest

from tests.nodejs import NODE_DIR, requires_node
from tests.server_process import ServerProcess
from tests.testapp.models import Note

pytestmark = [requires_node, pytest.mark.django_db(transaction=True)]

SCRIPT = r"""
const SockJS = require('sockjs-client');
const [url, transport, text] = process.argv.slice(1);
const sock = new SockJS(url, null, {transports: [transport]});
const out = {transport: null, events: [], pings: 0};
const send = (message) => sock.send(JSON.stringify(message));
const fail = (why) => { console.error(why, JSON.stringify(out)); process.exit(1); };
setTimeout(() => fail('timed out'), 20000);
sock.onopen = () => { out.transport = sock.transport; send({msg: 'connect', version: '1', support: ['1']}); };
sock.onmessage = (event) => {
  const message = JSON.parse(event.data);
  if (message.msg === 'ping') { out.pings += 1; send({msg: 'pong'}); return; }
  out.events.push(message.msg);
  if (message.msg === 'connected') send({msg: 'sub', id: 's', name: 'NotesByText', params: [text]});
  if (message.msg === 'ready') console.log('READY');
  if (message.msg === 'added') {
    out.added = message.fields;
    send({msg: 'method', id: '1', method: 'echo', params: ['a']});
  }
  if (message.msg === 'result' && message.id === '1') {
    // Idle over several heartbeat periods, then a second call: still connected.
    setTimeout(() => send({msg: 'method', id: '2', method: 'echo', params: ['b']}), 1500);
  }
  if (message.msg === 'result' && message.id === '2') { out.result = message.result; sock.close(); }
};
sock.onclose = (event) => { out.close = event.code; console.log(JSON.stringify(out)); process.exit(0); };
"""


@pytest.fixture(scope="module")
def heartbeat_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(
        DDDP_HEARTBEAT_INTERVAL="0.3", DDDP_HEARTBEAT_TIMEOUT="0.3", DDDP_SOCKJS_HEARTBEAT_DELAY="0.3"
    ).wait_until_listening()


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
def test_sockjs_client_on_each_transport_gets_live_data_and_methods(
    heartbeat_server: ServerProcess, transport: str
) -> None:
    text = f"sockjs-client-{uuid.uuid4().hex[:8]}"
    node = shutil.which("node")
    assert node is not None
    url = heartbeat_server.http_url + "/sockjs"
    client = subprocess.Popen(
        [node, "-e", SCRIPT, "--", url, transport, text], cwd=NODE_DIR, stdout=subprocess.PIPE, text=True
    )
    killer = threading.Timer(30, client.kill)  # a stuck client must not hang the suite
    killer.daemon = True
    killer.start()
    try:
        assert client.stdout is not None
        assert client.stdout.readline() == "READY\n"
        note = Note.objects.create(text=text)  # committed by another process than the server
        summary = json.loads(client.stdout.readline())
        assert client.wait(10) == 0
    finally:
        killer.cancel()
        client.kill()
    assert summary["transport"] == transport
    assert summary["added"] == {"text": note.text}
    assert summary["events"][:3] == ["connected", "ready", "added"]
    assert summary["result"] == ["b"]
    assert summary["pings"] >= 2  # the server's heartbeats reached it, and it stayed connected
    assert summary["close"] == 1000
