"""The HTTP request handler: gevent-websocket's, tuned for many small responses.

- The request's socket is in the environ (`SOCKET_KEY`): a SockJS long poll
  waits many seconds for something to send, and without its socket it could
  not notice its client leaving meanwhile (see
  `dddp.server.sockjs.ClientWatch`); the messages it then took would be
  written to nobody.
- TCP_NODELAY on every connection: pywsgi writes a response's headers and
  body separately, and Nagle's algorithm holds the body until the client
  ACKs the headers, which clients delay by up to 40 ms. A SockJS poll's
  answer is exactly such a small response (measured: xhr-polling p50 72 ms
  without it, 20 ms with it, in bench/sockjs.py).
- A WebSocket upgrade it must refuse gets the right status and a plain
  body (gevent-websocket's own refusals write text, which raises in pywsgi,
  say "402 Bad Request" for HTTP/1.0, and give a 500 for a key that is not
  base64), logged as one access-log line. So does one from a host or an
  origin the server does not accept (`dddp.server.origins`), before the
  101: a refused page never gets a WebSocket.
- A SockJS session's requests are access-logged only at DEBUG (see
  `QUIET_KEY`): at INFO they cost a tenth of the server's time under
  xhr-polling, for lines that say nothing the session's own do not.
- A request's head (request line and headers) must arrive within
  DDDP_REQUEST_HEAD_TIMEOUT: a slowloris client, trickling a head that never
  ends, otherwise holds a socket and a greenlet for ever. The first request's
  head is waited for before the handler starts (`dddp.server.first_heads`),
  timed from the connection's opening (`opened`); a kept-alive connection may then
  wait KEEPALIVE_TIMEOUT for the next request's first byte, and its head is
  timed from that byte. One gevent Timeout on the handler's own greenlet, only
  while the head is read: a response, however long (a SockJS long poll or
  stream), and an upgraded WebSocket are never cut by it.
- Then, until the response is written, each read of the body and each write
  of the response may wait at most DDDP_REQUEST_BODY_TIMEOUT (the socket's
  own timeout): a client trickling a body that never ends (a slow POST), or
  never reading its response, held a socket and a greenlet for ever too. A
  long poll waiting for something to send is not a read or a write, and is
  not cut; an upgraded WebSocket leaves this socket object behind.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
from typing import Any

import gevent
from geventwebsocket.handler import WebSocketHandler

from dddp.server.first_heads import log_late_head
from dddp.server.polling import serve_poll
from dddp.server.sockjs import QUIET_KEY, SOCKET_KEY

access_log = logging.getLogger("dddp.server.http")

#: Seconds a kept-alive connection may wait for its next request's first byte. Longer
#: than DDDP_REQUEST_HEAD_TIMEOUT: a proxy reuses its idle upstream connections for up
#: to 60 s (nginx's and AWS load balancers' defaults), and a POST (a SockJS poll) it
#: sends on one that we close at that moment may get a 502 rather than a retry.
KEEPALIVE_TIMEOUT = 75.0


class RequestHeadTimeout(BaseException):
    """A request's head did not arrive in time. Not an Exception (as gevent's own Timeout
    is not), so that pywsgi's `except Exception` around its parsing lets it through."""


class RequestHandler(WebSocketHandler):  # type: ignore[misc]
    def handle(self) -> None:
        if self.socket.family in (socket.AF_INET, socket.AF_INET6):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

    def upgrade_websocket(self) -> Any:
        refusal = _upgrade_refusal(self.environ, self.request_version)
        if refusal is None and _is_upgrade(self.environ):
            refusal = self.server.application.upgrade_refusal(self.environ)
        if refusal is None:
            return super().upgrade_websocket()
        status, headers, text = refusal
        body = text.encode("utf-8")
        self.start_response(
            status,
            [*headers, ("Content-Type", "text/plain; charset=UTF-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    #: Requests begun on this connection: the first one's head is timed from the opening.
    requests_begun = 0
    #: When the connection opened (a `time.monotonic()` value; set by the server), else None.
    opened: float | None = None
    #: When the request being read must have its whole head in (a `time.monotonic()` value).
    head_deadline = 0.0

    def handle_one_request(self) -> Any:
        head_timeout = self.server.request_head_timeout
        kept_alive = self.requests_begun > 0
        self.requests_begun += 1
        opened = self.opened if self.opened is not None and not kept_alive else time.monotonic()
        self.socket.settimeout(None)  # the body timeout of the request before, if any
        try:
            idle_timeout = max(KEEPALIVE_TIMEOUT, head_timeout) if kept_alive else head_timeout
            with gevent.Timeout(idle_timeout, RequestHeadTimeout):
                self.rfile.peek(1)  # the request's first bytes
        except RequestHeadTimeout:
            return None  # an idle connection (kept alive, or a browser's spare): closed quietly
        except (OSError, ValueError):
            pass  # what reads next meets the error, and handles it its way
        self.head_deadline = (time.monotonic() if kept_alive else opened) + head_timeout
        try:
            # A SockJS poll, the most frequent request by far, takes a shorter way
            # (dddp.server.polling) when its whole head is already in the buffer,
            # which it reads without waiting; everything else is pywsgi's.
            endpoints = getattr(self.server.application, "sockjs", None)
            if endpoints is not None and not self.rfile.closed:
                answered = serve_poll(self, endpoints, {SOCKET_KEY: self.socket, QUIET_KEY: True})
                if answered is not None:
                    return True if answered else None
            return super().handle_one_request()
        except RequestHeadTimeout:
            log_late_head(self.client_address, head_timeout)
            return None

    # pywsgi reads the head in these two, and nowhere else: the deadline covers
    # exactly them, never the response (a long poll, a stream) nor an upgraded socket.
    def read_requestline(self) -> Any:
        with self._head_timeout():
            return super().read_requestline()

    def read_request(self, raw_requestline: str) -> Any:
        with self._head_timeout():
            head = super().read_request(raw_requestline)
        self.socket.settimeout(self.server.request_body_timeout)  # the body's reads, the response's writes
        return head

    def _head_timeout(self) -> gevent.Timeout:
        return gevent.Timeout(max(self.head_deadline - time.monotonic(), 0.0), RequestHeadTimeout)

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ[SOCKET_KEY] = self.socket
        return environ

    def log_request(self) -> None:
        if self.environ is not None and self.environ.get(QUIET_KEY):
            if access_log.isEnabledFor(logging.DEBUG):
                access_log.debug(self.format_request())
            return
        super().log_request()


def _upgrade_refusal(
    environ: dict[str, Any], http_version: str
) -> tuple[str, list[tuple[str, str]], str] | None:
    """(status, headers, text) refusing a WebSocket upgrade request, or None: it is acceptable
    (or not an upgrade request at all, which gevent-websocket passes on as a plain request)."""
    if not _is_upgrade(environ):
        return None
    if http_version != "HTTP/1.1":
        return "400 Bad Request", [], "A WebSocket upgrade needs HTTP/1.1\n"
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version not in WebSocketHandler.SUPPORTED_VERSIONS:  # RFC 6455 4.4: 426 and the versions spoken
        supported = [("Sec-WebSocket-Version", ", ".join(WebSocketHandler.SUPPORTED_VERSIONS))]
        return "426 Upgrade Required", supported, "Unsupported or missing Sec-WebSocket-Version\n"
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:  # binascii.Error
        valid_key = False
    if not valid_key:
        return "400 Bad Request", [], "Sec-WebSocket-Key must be 16 bytes in base64\n"
    return None


def _is_upgrade(environ: dict[str, Any]) -> bool:
    """Whether gevent-websocket takes the request as a WebSocket upgrade."""
    if environ.get("REQUEST_METHOD") != "GET" or environ.get("HTTP_UPGRADE", "").lower() != "websocket":
        return False
    return "upgrade" in environ.get("HTTP_CONNECTION", "").lower()
