"""The HTTP request handler: gevent-websocket's, with the request's socket in the environ.

A SockJS long poll waits many seconds for something to send; without its
socket it could not notice its client leaving meanwhile (see
`dddp.server.sockjs.ClientWatch`), and the messages it then took would be
written to nobody.
"""

from __future__ import annotations

from typing import Any

from geventwebsocket.handler import WebSocketHandler

from dddp.server.sockjs import SOCKET_KEY


class RequestHandler(WebSocketHandler):  # type: ignore[misc]
    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ[SOCKET_KEY] = self.socket
        return environ
