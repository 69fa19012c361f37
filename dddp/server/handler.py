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
"""

from __future__ import annotations

import base64
import logging
import socket
from typing import Any

from geventwebsocket.handler import WebSocketHandler

from dddp.server.polling import serve_poll
from dddp.server.sockjs import QUIET_KEY, SOCKET_KEY

access_log = logging.getLogger("dddp.server.http")


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

    def handle_one_request(self) -> Any:
        # A SockJS poll, the most frequent request by far, takes a shorter way
        # (dddp.server.polling); everything else is pywsgi's.
        endpoints = getattr(self.server.application, "sockjs", None)
        if endpoints is not None and not self.rfile.closed:
            answered = serve_poll(self, endpoints, {SOCKET_KEY: self.socket, QUIET_KEY: True})
            if answered is not None:
                return True if answered else None
        return super().handle_one_request()

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
