"""Connections whose first request head is still arriving: waited for without a greenlet each.

gevent's server starts a greenlet for every connection it accepts, and pywsgi's handler
gives it a buffered file (8 KiB) and reads the head line by line. A connection that
sends its head slowly, or never (a slowloris client; a browser's spare connection),
held all of that until DDDP_REQUEST_HEAD_TIMEOUT: about 58 Python objects each,
besides the buffer and the greenlet's stack. Their number is the harm: CPython's
small-object allocator returns a 1 MiB arena to the system only once every object
in it is gone, and the few long-lived objects made meanwhile (by the sessions that
stay) are spread over the arenas such a crowd filled. Measured with bench/attacks.py,
attack 5: 2,000 partial heads and 1,000 silent WebSockets grew the allocator from 27
arenas to 39, and all 39 stayed after every socket was closed (RSS 1.21x of before).

Here such a connection is its socket, a read watcher and the bytes read so far, until
its head is complete (an empty line), or long enough for pywsgi to judge
(HEAD_LIMIT), or the client stops sending (EOF). Only then does the handler's greenlet
start, with those bytes in front of its input (`head_first_file`). One timer, for the
oldest connection, closes each that is still waiting DDDP_REQUEST_HEAD_TIMEOUT after
its opening: quietly when it sent nothing (a spare connection), else with one log
line per interval for all of them.

A connection's later requests (kept alive) are the handler's, in its greenlet, as
before: their heads are timed there (`dddp.server.handler`).
"""

from __future__ import annotations

import io
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from dddp.log_throttle import LogThrottle, left_out

access_log = logging.getLogger("dddp.server.http")
late_heads = LogThrottle()  # a slowloris attack is thousands of them: one line per interval

#: Bytes of a head read here at most. pywsgi refuses a request line over 8 KiB and
#: reads longer heads itself (until its own limits), within the same deadline.
HEAD_LIMIT = 65536

#: Called with (socket, address, bytes read, when the connection opened) once the head is in.
Handover = Callable[[Any, Any, bytes, float], None]


class FirstHeads:
    """The connections still sending their first request head, oldest first."""

    def __init__(self, loop: Any, timeout: float, handover: Handover):
        self._loop = loop
        self._timeout = timeout  # DDDP_REQUEST_HEAD_TIMEOUT
        self._handover = handover
        self._waiting: dict[_Waiting, None] = {}  # in order of opening, so of deadline
        self._timer: Any = None

    def __len__(self) -> int:
        return len(self._waiting)

    def wait(self, sock: Any, address: Any) -> None:
        """Take a just-accepted connection; `handover` gets it when its head is in."""
        waiting = _Waiting(self, sock, address, time.monotonic())
        self._waiting[waiting] = None
        waiting.watcher = self._loop.io(sock.fileno(), 1)  # 1: readable
        waiting.watcher.start(waiting.on_readable)
        if self._timer is None:
            self._arm()

    def close(self) -> None:
        """Close every connection still waiting (the server is stopping)."""
        for waiting in list(self._waiting):
            self._drop(waiting)
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def _head_in(self, waiting: _Waiting) -> None:
        self._forget(waiting)
        self._handover(waiting.sock, waiting.address, bytes(waiting.head), waiting.opened)

    def _drop(self, waiting: _Waiting) -> None:
        self._forget(waiting)
        try:
            waiting.sock.close()
        except OSError:
            pass

    def _forget(self, waiting: _Waiting) -> None:
        self._waiting.pop(waiting, None)
        if waiting.watcher is not None:
            waiting.watcher.stop()
            waiting.watcher.close()
            waiting.watcher = None

    def _arm(self) -> None:
        """Start the timer for the oldest waiting connection's deadline, if any waits."""
        oldest = next(iter(self._waiting), None)
        if oldest is not None:
            self._timer = self._loop.timer(max(oldest.opened + self._timeout - time.monotonic(), 0.0))
            self._timer.start(self._expire)

    def _expire(self) -> None:
        self._timer.close()
        self._timer = None
        now = time.monotonic()
        late = []
        for waiting in self._waiting:
            if waiting.opened + self._timeout > now:
                break
            late.append(waiting)
        for waiting in late:
            self._drop(waiting)
            if waiting.head:  # one that sent nothing (a browser's spare connection) goes quietly
                log_late_head(waiting.address, self._timeout)
        self._arm()


def log_late_head(address: Any, timeout: float) -> None:
    """One line per interval for connections closed without their whole head in time."""
    count = late_heads.allow("late head")
    if count is not None:
        access_log.info(
            "closed a connection from %s: no whole request head within %gs (DDDP_REQUEST_HEAD_TIMEOUT)%s",
            address[0] if isinstance(address, tuple) else "",
            timeout,
            left_out(count),
        )


class _Waiting:
    __slots__ = ("address", "head", "heads", "opened", "sock", "watcher")

    def __init__(self, heads: FirstHeads, sock: Any, address: Any, opened: float):
        self.heads = heads
        self.sock = sock
        self.address = address
        self.opened = opened
        self.head = bytearray()
        self.watcher: Any = None

    def on_readable(self) -> None:
        # In the event loop's own greenlet, which must not wait: the socket is
        # non-blocking (gevent's sockets all are), so a read takes what is there.
        try:
            data = os.read(self.sock.fileno(), HEAD_LIMIT - len(self.head))
        except BlockingIOError:
            return
        except OSError:  # reset by the client
            self.heads._drop(self)
            return
        if not data:  # the client sent all it will: pywsgi answers what there is, as it did
            if self.head:
                self.heads._head_in(self)
            else:
                self.heads._drop(self)
            return
        searched_from = max(len(self.head) - 2, 0)
        self.head += data
        if (
            self.head.find(b"\n\r\n", searched_from) >= 0
            or self.head.find(b"\n\n", searched_from) >= 0
            or len(self.head) >= HEAD_LIMIT
            or _no_headers_follow(self.head)
        ):
            self.heads._head_in(self)


def _no_headers_follow(head: bytearray) -> bool:
    """Whether the request line is in and is not `METHOD TARGET VERSION` (HTTP/0.9, or
    garbage): pywsgi reads no headers after it, and answers it at once."""
    end = head.find(b"\n")
    return end >= 0 and len(head[:end].split()) != 3


class _HeadFirst(socket.SocketIO):
    """A socket's input with the bytes already read from it first."""

    def __init__(self, sock: Any, head: bytes):
        super().__init__(sock, "rb")
        self._head: bytes | memoryview = head

    def readinto(self, buffer: Any) -> int | None:
        head = self._head
        if not head:
            return super().readinto(buffer)
        size = min(len(buffer), len(head))
        buffer[:size] = head[:size]
        self._head = memoryview(head)[size:] if size < len(head) else b""
        return size


def head_first_file(sock: Any, head: bytes) -> io.BufferedReader:
    """What `sock.makefile('rb')` gives, with `head` read first. The buffer holds at
    least the whole head, so that what follows it is in the buffer too (a WebSocket's
    first messages, which `dddp.server.app` takes from there)."""
    sock._io_refs += 1  # as makefile counts its files: the socket closes after them
    return io.BufferedReader(_HeadFirst(sock, head), max(io.DEFAULT_BUFFER_SIZE, len(head)))
