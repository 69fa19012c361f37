"""The listening HTTP server: pywsgi's, with a quiet back-off at the open-files limit.

When the process runs out of file descriptors, `accept` fails with EMFILE
(or ENFILE, for the whole system) until some are closed. gevent's accept
loop already waits before trying again, doubling the wait up to a second,
but it logs each failure with a traceback: at the limit that was a
traceback every few hundred milliseconds, saying nothing new. Here the
failure is one log line per interval, with a count; connections already
open are served meanwhile, and new clients wait in the listen backlog and
are accepted on the first retry after descriptors are free.

A connection's handler (`dddp.server.handler`) starts only once its first
request head is in (`dddp.server.first_heads`): until then the connection costs
a socket, a watcher and the bytes read, not a greenlet. A first request that is a
WebSocket upgrade then usually needs no handler at all (`dddp.server.upgrades`).

The server also carries DDDP_REQUEST_HEAD_TIMEOUT and DDDP_REQUEST_BODY_TIMEOUT for its handlers
(`dddp.server.handler`): the HTTP side's settings stay with the HTTP server.
"""

from __future__ import annotations

import errno
import logging
import resource
from typing import Any

from gevent.baseserver import BaseServer
from gevent.pywsgi import WSGIServer

from dddp.log_throttle import LogThrottle, left_out
from dddp.server.first_heads import FirstHeads, head_first_file
from dddp.server.upgrades import serve_upgrade

logger = logging.getLogger("dddp.server")

#: What `accept` raises when descriptors (or the kernel's memory for sockets) run out:
#: the failure passes as connections close, so the server waits and tries again.
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_failures = LogThrottle()


class HTTPServer(WSGIServer):  # type: ignore[misc]
    def __init__(self, *args: Any, request_head_timeout: float, request_body_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.request_head_timeout = request_head_timeout  # DDDP_REQUEST_HEAD_TIMEOUT
        self.request_body_timeout = request_body_timeout  # DDDP_REQUEST_BODY_TIMEOUT
        self._backoff: float = self.min_delay
        self._first_heads: FirstHeads | None = None

    def do_handle(self, sock: Any, address: Any) -> None:
        """Wait for the connection's first request head without a greenlet, then handle it."""
        if self._first_heads is None:
            self._first_heads = FirstHeads(self.loop, self.request_head_timeout, self._head_in)
        self._first_heads.wait(sock, address)

    def _head_in(self, sock: Any, address: Any, head: bytes, opened: float) -> None:
        if self.closed:
            sock.close()
            return
        # gevent's own: the handler's greenlet, which closes the socket when done.
        BaseServer.do_handle(self, sock, address, head, opened)

    def handle(self, sock: Any, address: Any, head: bytes = b"", opened: float | None = None) -> None:
        # A WebSocket upgrade takes a short way (dddp.server.upgrades) when it can: the
        # first request of every WebSocket client, and a fifth of its whole cost otherwise.
        if head and hasattr(self.application, "websocket_endpoint"):
            if serve_upgrade(self.application, sock, address, head, self.environ):
                return
        handler = self.handler_class(sock, address, self, rfile=head_first_file(sock, head))
        if opened is not None:
            handler.opened = opened
        handler.handle()

    def close(self) -> None:
        super().close()
        if self._first_heads is not None:
            self._first_heads.close()

    def do_read(self) -> Any:
        try:
            accepted = super().do_read()
        except OSError as exc:
            if exc.errno not in EXHAUSTED:
                raise  # gevent's own handling: its traceback, its back-off
            self._back_off(exc)
            return None
        self._backoff = self.min_delay
        return accepted

    def _back_off(self, exc: OSError) -> None:
        """Stop accepting for a while (doubling up to `max_delay`), and say so once per interval."""
        count = _failures.allow(exc.errno)
        if count is not None:
            soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            logger.error(
                "cannot accept connections: %s (this process may open %d files); new clients wait "
                "until connections close, open ones are served%s",
                exc.strerror,
                soft_limit,
                left_out(count),
            )
        # As gevent's BaseServer._do_read backs off for other errors: its `_timer` is
        # what `stop_accepting` and `close` cancel.
        self.stop_accepting()
        self._timer = self.loop.timer(self._backoff)
        self._timer.start(self._start_accepting_if_started)
        self._backoff = min(self.max_delay, self._backoff * 2)
