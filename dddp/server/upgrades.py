"""A short way through HTTP for WebSocket upgrades: every WebSocket client's first request.

Ten thousand clients connecting are ten thousand upgrades. Through pywsgi and
gevent-websocket each cost the server about a fifth of its whole work for a
client that then subscribes (measured by bench/observers.py's 10,000 rung under
py-spy): pywsgi's head parsing by the email package and its full environ,
gevent-websocket's handler, WebSocket object and response writer, for a
response of four lines that the server's own transport then replaces.

`serve_upgrade` takes a connection's first request, when it is a WebSocket
upgrade it fully understands (`dddp.server.heads`, then RFC 6455 4.2.1: `GET`
over HTTP/1.1 at a path where a WebSocket is served, `Upgrade: websocket`,
`Connection` with `upgrade`, version 13, a 16-byte key, no body), that the
host and origin policy accepts (`dddp.server.origins`): the session's transport
takes the socket, writes the 101 on it (one send), and the session starts with
what the client sent after its head.
Everything else, refusals included, is left unread for pywsgi's way, which
answers it as before (`dddp.server.handler`). The 101 is byte for byte the one
gevent-websocket writes; the session is the same either way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from dddp.server.heads import parse_head, small_environ
from dddp.server.origins import Refusal

#: RFC 6455 1.3: what the key is hashed with, for Sec-WebSocket-Accept.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Headers that make a request more than an upgrade this module understands.
_NOT_HERE = frozenset({"transfer-encoding", "expect", "content-length"})


def parse_upgrade(head: bytes) -> tuple[str, dict[str, str]] | None:
    """(path, headers by lowercase name) of a well-formed WebSocket upgrade whose request
    line and headers are all of `head` (up to the blank line); None for anything else."""
    parsed = parse_head(head)
    if parsed is None or parsed.method != b"GET" or parsed.version != b"HTTP/1.1":
        return None
    if b"?" in parsed.target or not parsed.target.startswith(b"/"):
        return None
    headers = parsed.headers
    if not _NOT_HERE.isdisjoint(headers):
        return None
    if headers.get("upgrade", "").lower() != "websocket":
        return None
    if "upgrade" not in (token.strip().lower() for token in headers.get("connection", "").split(",")):
        return None
    if headers.get("sec-websocket-version") != "13":
        return None
    try:
        if len(base64.b64decode(headers.get("sec-websocket-key", ""), validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    return parsed.target.decode("latin-1"), headers


def switching_protocols(key: str) -> bytes:
    """The 101 response to an upgrade with this Sec-WebSocket-Key (as gevent-websocket's)."""
    accept = base64.b64encode(hashlib.sha1(key.encode("latin-1") + _GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def serve_upgrade(app: Any, sock: Any, address: Any, head: bytes, server_environ: dict[str, Any]) -> bool:
    """Upgrade the connection whose first bytes are `head` (its first request's head and
    what followed it), if this module takes it; False leaves it, unread, to pywsgi.

    `app` is the `DDPServer`; `server_environ` pywsgi's base environ (its server name
    and port, for a request without a Host header)."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return False
    parsed = parse_upgrade(head[:end])
    if parsed is None:
        return False
    path, headers = parsed
    endpoint = app.websocket_endpoint(path)
    if endpoint is None:
        return False
    environ = small_environ(server_environ, "GET", path, "HTTP/1.1", address, headers)
    try:
        app.origins.check(environ)
    except Refusal:
        return False  # refused by pywsgi's way, which says so in the log
    kind, start = endpoint
    client = f"{environ['REMOTE_ADDR']}:{environ['REMOTE_PORT']}"
    transport = kind(sock.detach(), client, app.max_message_size)
    if transport.write_head(switching_protocols(headers["sec-websocket-key"])):
        start(transport, environ, head[end + 4 :])
    return True  # (if the client is gone, the transport closed its socket: nothing to serve)
