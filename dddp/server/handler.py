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
- A SockJS session's requests are access-logged only at DEBUG (see
  `QUIET_KEY`): at INFO they cost a tenth of the server's time under
  xhr-polling, for lines that say nothing the session's own do not.
"""

from __future__ import annotations

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
