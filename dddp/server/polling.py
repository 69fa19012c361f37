"""A short way through HTTP for SockJS polls, the server's most frequent request.

Under xhr-polling every message a client receives is one HTTP request: 100
clients at 50 writes/s are 5,000 requests a second, and each write's
fan-out answers a hundred polls at once, so the last client waits for every
response written before its own. gevent's pywsgi spends about 150 µs of CPU
on each (its headers go through the email package's parser, the environ is
built in full, each response header is checked and formatted), three times
what sockjs-node spends.

`serve_poll` answers a poll (`POST <prefix>/<server>/<session>/xhr`, no
body) from the bytes the handler's buffer already holds, with a small
environ, and writes the response in one `sendall`. It takes only a head
that `dddp.server.heads` fully understands, wholly in the buffer, with no
body, no `Transfer-Encoding`, `Expect` or `Upgrade`; anything else, and
every other request, is left unread for pywsgi.
The WSGI side (`SockJSEndpoints`) is the same either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from dddp.protocol import sockjs
from dddp.server.heads import parse_head, small_environ
from dddp.server.sockjs import RESPOND_KEY

logger = logging.getLogger("dddp.server")

#: Requests whose header we do not handle here: they need pywsgi's whole machinery.
_NOT_HERE = frozenset({"transfer-encoding", "expect", "upgrade"})


def parse_poll(head: bytes, prefix: bytes) -> tuple[str, str, dict[str, str]] | None:
    """(path, HTTP version, headers by lowercase name) of a SockJS poll whose request line
    and headers are all of `head` (up to the blank line); None for anything else."""
    parsed = parse_head(head)
    if parsed is None or parsed.method != b"POST":
        return None
    target = parsed.target
    if not (target.startswith(prefix + b"/") and target.endswith(b"/xhr")) or b"?" in target:
        return None
    path = target.decode("latin-1")
    endpoint = sockjs.parse_path(path[len(prefix) :])
    if endpoint is None or endpoint.transport != "xhr":
        return None
    headers = parsed.headers
    if not _NOT_HERE.isdisjoint(headers) or headers.get("content-length", "0") != "0":
        return None
    return path, parsed.version.decode("latin-1"), headers


def serve_poll(handler: Any, endpoints: Any, extra: dict[str, Any]) -> bool | None:
    """Answer the poll at the head of `handler`'s buffer, if it is one this module takes.

    Returns None if the request was left for pywsgi, True when answered and the
    connection stays open, False when answered and it must close.
    """
    try:
        buffered = handler.rfile.peek(65536)
    except (OSError, ValueError):
        return None  # pywsgi reads it, and meets the error the way it does
    end = buffered.find(b"\r\n\r\n")
    if end < 0:
        return None
    parsed = parse_poll(bytes(buffered[:end]), endpoints.prefix.encode("latin-1"))
    if parsed is None:
        return None
    path, version, headers = parsed
    handler.rfile.read(end + 4)  # exactly this request; what follows stays for the next
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    environ = small_environ(handler.server.environ, "POST", path, version, handler.client_address, headers)
    environ.update(extra)
    response: list[Any] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        response[:] = [status, response_headers]

    direct = _DirectAnswer(handler.socket, version, keep_alive)
    environ[RESPOND_KEY] = direct
    try:
        body = endpoints(environ, start_response)
    except Exception:  # as pywsgi would: a 500, logged, and the connection closed
        logger.exception("SockJS poll %s failed", path)
        handler.socket.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
        return False
    if direct.used:
        # Answered where the session wrote; what the socket did not take then goes now.
        return _write(handler, direct.rest, body, direct.failed) and keep_alive
    status, response_headers = response
    return _write(handler, _head(status, response_headers, version, keep_alive), body) and keep_alive


class _DirectAnswer:
    """A poll's response sent from wherever its session writes (`RESPOND_KEY`), never blocking."""

    __slots__ = ("_keep_alive", "_socket", "_version", "failed", "rest", "used")

    def __init__(self, sock: Any, version: str, keep_alive: bool):
        self._socket = sock
        self._version = version
        self._keep_alive = keep_alive
        self.used = False
        self.failed = False  # the client is gone: the poll's messages went nowhere
        self.rest = b""  # what the socket could not take at once, for the poll's greenlet

    def __call__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> bool:
        data = _head(status, headers, self._version, self._keep_alive) + body
        self.used = True
        timeout = self._socket.gettimeout()
        self._socket.settimeout(0)
        try:
            sent = self._socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.failed = True
            return True
        finally:
            self._socket.settimeout(timeout)
        self.rest = data[sent:]
        return True


def _head(status: str, headers: list[tuple[str, str]], version: str, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Date: {_date()}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if not keep_alive:
        lines.append("Connection: close")
    elif version == "HTTP/1.0":
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _write(handler: Any, start: bytes, body: Iterable[bytes], failed: bool = False) -> bool:
    """Send the head and the body; the body's generator learns of a failed write (see
    `dddp.server.sockjs._delivered`): it is closed without being run to its end."""
    chunks = iter(body)
    try:
        if failed:
            raise BrokenPipeError
        handler.socket.sendall(start + next(chunks, b""))
        for chunk in chunks:  # runs the generator past its `yield`: the body went out
            handler.socket.sendall(chunk)
    except OSError:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return False
    return True


_date_cache: tuple[int, str] = (0, "")


def _date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, sockjs.http_date(now))
    return _date_cache[1]
