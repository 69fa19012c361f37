"""The Listener over a real PostgreSQL connection: LISTEN on demand, batches in order."""

from __future__ import annotations

import time
from typing import Any

import gevent
import psycopg2
import psycopg2.extensions
import pytest
from django.db import connections
from gevent.queue import Queue

from dddp.server.listener import Listener, Notification

pytestmark = pytest.mark.django_db(transaction=True)


def plain_connection() -> Any:
    connection = psycopg2.connect(**connections["default"].get_connection_params())
    connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    return connection


def notify(channel: str, payload: str) -> None:
    with plain_connection() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])
    connection.close()


class ReadsANotificationWithEachListen:
    """A LISTEN connection that, as each LISTEN's answer comes back, has also read a
    notification sent meanwhile: psycopg2 then holds it in `notifies`, and the socket
    has nothing more for select (what happens when a commit lands during a command)."""

    def __init__(self) -> None:
        self.real = plain_connection()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def cursor(self) -> Any:
        outer = self

        class Cursor:
            def __enter__(self) -> Cursor:
                self.real = outer.real.cursor()
                return self

            def __exit__(self, *exc: Any) -> None:
                self.real.close()

            def execute(self, sql: str) -> None:
                self.real.execute(sql)
                if sql == 'LISTEN "second"':
                    notify("first", "sent during the LISTEN")
                    deadline = time.monotonic() + 5
                    while not outer.real.notifies and time.monotonic() < deadline:
                        time.sleep(0.01)
                        outer.real.poll()

        return Cursor()


def test_a_notification_read_with_a_commands_answer_is_delivered_at_once() -> None:
    batches: Queue[list[Notification]] = Queue()
    connection = ReadsANotificationWithEachListen()
    listener = Listener(lambda: connection, batches.put, lambda: None, always=("first",))
    try:
        gevent.sleep(0.1)  # connected, LISTENing to "first", waiting in select
        listener.listen({"second"})
        assert connection.real.notifies or not batches.empty()  # read along with the answer
        assert batches.get(timeout=2) == [("first", "sent during the LISTEN")]
    finally:
        listener.stop()
        connection.real.close()


def test_notifications_arrive_in_commit_order_on_the_channels_listened_to() -> None:
    batches: Queue[list[Notification]] = Queue()
    listener = Listener(plain_connection, batches.put, lambda: None)
    try:
        gevent.sleep(0.1)
        listener.listen({"alpha"})
        for payload in ("1", "2", "3"):
            notify("alpha", payload)
        notify("beta", "not listened to")
        notify("alpha", "marker")
        received: list[Notification] = []
        while ("alpha", "marker") not in received:
            received += batches.get(timeout=2)
        assert received == [("alpha", "1"), ("alpha", "2"), ("alpha", "3"), ("alpha", "marker")]
    finally:
        listener.stop()
