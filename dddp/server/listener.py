"""The Listener: the process's one LISTEN connection to PostgreSQL.

PostgreSQL wakes every listening connection at every notifying commit, so a
process holds exactly one, whatever its number of channels or clients. It
LISTENs only to the channels some observer needs (reference-counted), hands
each batch of notifications, in order, to a callback, and when the connection
is lost it reconnects with backoff, LISTENs again, and calls `on_reconnect`:
notifications sent while it was away are gone, so observers must re-read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import gevent
import psycopg2
import psycopg2.extensions
from gevent.event import AsyncResult
from gevent.select import select

from dddp.server.workers import collect_soon

logger = logging.getLogger("dddp.server")

Notification = tuple[str, str]  # (channel, payload)


class Listener:
    """Owns the LISTEN connection; only its own greenlet ever touches it."""

    def __init__(
        self,
        connect: Callable[[], Any],
        on_batch: Callable[[list[Notification]], None],
        on_reconnect: Callable[[], None],
        always: tuple[str, ...] = (),
    ):
        self._connect = connect
        self._on_batch = on_batch
        self._on_reconnect = on_reconnect
        self._counts: dict[str, int] = {channel: 1 for channel in always}
        self._commands: list[tuple[str, str, AsyncResult[None]]] = []
        self._wake_read, self._wake_write = os.pipe()
        self._connection: Any = None
        self._opening = False  # connecting, and LISTENing to every counted channel
        self._lost = False
        self._greenlet = gevent.spawn(self._run)

    # --- called from other greenlets ------------------------------------------------

    def listen(self, channels: set[str]) -> None:
        """LISTEN to these channels (counted); returns once PostgreSQL has them."""
        for channel in sorted(channels):
            self._counts[channel] = self._counts.get(channel, 0) + 1
            if self._counts[channel] == 1:
                self._command("LISTEN", channel)

    def unlisten(self, channels: set[str]) -> None:
        for channel in sorted(channels):
            self._counts[channel] -= 1
            if self._counts[channel] == 0:
                del self._counts[channel]
                self._command("UNLISTEN", channel)

    def _command(self, verb: str, channel: str) -> None:
        if self._connection is None and not self._opening:
            # No connection (lost, or not yet made): the next one LISTENs every counted
            # channel, and its reconnect makes observers re-read. Waiting here would hold
            # a new subscription until the database is back (it then gets its 503 at once).
            return
        done: AsyncResult[None] = AsyncResult()
        self._commands.append((verb, channel, done))
        os.write(self._wake_write, b"x")
        done.get()

    def stop(self, timeout: float = 0.1) -> None:
        """End the greenlet (waiting at most `timeout` seconds) and close the connection."""
        self._greenlet.kill(timeout=timeout)
        # One still alive is stuck in the connection: the process's exit closes it.
        if self._greenlet.dead and self._connection is not None:
            self._connection.close()

    # --- the listener's own greenlet ---------------------------------------------

    def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                self._open()
                delay = 0.1
                self._serve()
            except (psycopg2.Error, OSError) as exc:
                logger.warning(
                    "lost the LISTEN connection (%s); reconnecting in %.1fs", _first_line(exc), delay
                )
                self._close()
                collect_soon()  # a failed attempt's socket is freed with its cycles
                gevent.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _open(self) -> None:
        # Commands meanwhile wait for it (a channel counted after the loop below read
        # the counts must still be LISTENed): `_serve` runs them first.
        self._opening = True
        try:
            connection = self._connect()
            connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            with connection.cursor() as cursor:
                for channel in sorted(self._counts):
                    cursor.execute(f'LISTEN "{channel}"')
        finally:
            self._opening = False
        self._connection = connection
        if self._lost:
            self._lost = False
            logger.info("LISTEN connection restored; observers re-read the database")
            self._on_reconnect()

    def _serve(self) -> None:
        connection = self._connection
        while True:
            self._run_commands(connection)
            # A command's round trip may have read notifications along with its answer:
            # psycopg2 keeps them in `notifies`, and the socket has nothing more to wake
            # select for. Those go first, or they would wait for the next commit (or 30 s).
            if not connection.notifies:
                readable, _, _ = select([connection, self._wake_read], [], [], 30.0)
                if self._wake_read in readable:
                    os.read(self._wake_read, 4096)
                if connection in readable or not readable:
                    connection.poll()  # with no timeout hit, also notices a dead connection
            if connection.notifies:
                batch = [(n.channel, n.payload) for n in connection.notifies]
                connection.notifies.clear()
                self._on_batch(batch)

    def _run_commands(self, connection: Any) -> None:
        while self._commands:
            verb, channel, done = self._commands[0]
            with connection.cursor() as cursor:
                cursor.execute(f'{verb} "{channel}"')
            logger.debug("%s %s", verb, channel)
            self._commands.pop(0)
            done.set(None)

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except psycopg2.Error:
                pass
        self._connection = None
        self._lost = True  # so the next _open tells observers to re-read
        # Commands waiting are done as far as they can be: the next connection
        # LISTENs to what is counted then.
        commands, self._commands = self._commands, []
        for _verb, _channel, done in commands:
            done.set(None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
