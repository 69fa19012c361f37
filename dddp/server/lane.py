"""The large-message lane: big client messages are handled one at a time, one per turn of the loop.

Handling a message costs time in proportion to its size (a 900 KB ping: 1.4 ms
to parse, 2 ms to encode its pong), and transports hand messages over from the
event loop's own callbacks. Fifty clients sending such messages as fast as
they could (bench/attacks.py, attack 2) made each turn of the loop take 200 ms
and more, and every other client waited that long for anything at all.

A message over LARGE_MESSAGE characters now waits here, in one queue served by
one greenlet that lets the loop turn after each: small messages never wait
behind big ones, and big ones share the server's time in turn. Its session
reads nothing more meanwhile, and keeps what it had already read behind it, in
order (`Session.receive`).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import gevent

from dddp.server.loop import next_turn

if TYPE_CHECKING:
    from dddp.server.session import Session

#: Characters past which a client message waits its turn in the lane.
LARGE_MESSAGE = 65536


class Lane:
    """Sessions with a big message waiting, served one message per turn of the event loop."""

    def __init__(self) -> None:
        self._waiting: deque[Session] = deque()
        self._worker: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, session: Session) -> None:
        """Queue the session's big message; `session.receive_waiting()` is called in its turn."""
        self._waiting.append(session)
        if self._worker is None:
            self._worker = gevent.spawn(self._serve)

    def _serve(self) -> None:
        try:
            while self._waiting:
                self._waiting.popleft().receive_waiting()
                next_turn()
        finally:
            self._worker = None


lane = Lane()
