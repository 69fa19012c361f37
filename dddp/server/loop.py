"""Letting the event loop turn: what a greenlet doing a long piece of work calls between parts.

`gevent.sleep(0)` is not enough. It puts the greenlet back among the
callbacks, and gevent runs up to 50 callbacks (this one again among them)
before it polls the sockets: fifty parts of the same work ran back to back
(bench/attacks.py, attack 2: one turn of the loop handled up to 50 big
messages, 200 ms). A timer, however short, fires only after the poll.
"""

from __future__ import annotations

import gevent

#: What `next_turn` waits: long enough to come after a poll of the sockets.
TURN = 0.0001


def next_turn() -> None:
    """Wait until the event loop has polled its sockets (and run what they woke) once more."""
    gevent.sleep(TURN)
