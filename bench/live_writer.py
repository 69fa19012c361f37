"""The live-data benchmark's writer: a plain Django process saving rows through the ORM.

It runs in its own process (no gevent), as a web or task worker would, and the
parent (`live.py`) drives it over a pipe. Each command's reply is one tuple:
`("setup", rows, bulk_rows)`, `("paced", table, rate, begin, start, end, atomic)`,
`("flood", table, begin, start, end, atomic)`, `("baseline", repeats)`, `("stop",)`.

Every write is an update of one of the table's rows (round robin) with
`sent_at = time.time()` taken just before `save()`: updates keep the table,
and so each subscriber's initial data, the same size all through the run.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from typing import Any

#: The channel the floor's trigger NOTIFYs (live_floor.js LISTENs to it).
FLOOR_CHANNEL = "live_floor"

FLOOR_TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION live_floor_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{FLOOR_CHANNEL}', row_to_json(NEW)::text);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER live_floor_notify AFTER INSERT OR UPDATE ON live_app_floortick
    FOR EACH ROW EXECUTE FUNCTION live_floor_notify();
"""


def writer_main(pipe: Connection) -> None:
    """The writer process's entry point (multiprocessing, spawn)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "live_settings")
    import django

    django.setup()
    answer_commands(pipe, Writer())


def answer_commands(pipe: Connection, writer: Any) -> None:
    """Run each command the parent sends as a method of `writer`, until `stop` or EOF."""
    while True:
        try:
            command = pipe.recv()
        except EOFError:
            return  # the parent is gone
        if command[0] == "stop":
            return
        pipe.send(getattr(writer, command[0])(*command[1:]))


class Writer:
    def __init__(self) -> None:
        from live_app import models

        self.models: dict[str, Any] = {"tick": models.Tick, "floor": models.FloorTick}
        self.rows: dict[str, list[Any]] = {}

    def setup(self, rows: int, bulk_rows: int) -> tuple[()]:
        """Fresh tables (no dead rows from an earlier run), their rows, and the floor's trigger."""
        from django.db import connection
        from django.db.models import Model
        from live_app import models

        tables: list[type[Model]] = [models.Tick, models.FloorTick, models.Bulk]
        with connection.schema_editor() as editor:
            for model in tables:
                editor.execute(f"DROP TABLE IF EXISTS {model._meta.db_table}")
                editor.create_model(model)
        with connection.cursor() as cursor:
            cursor.execute(FLOOR_TRIGGER_SQL)
        # bulk_create sends no post_save: no NOTIFY, which no one would hear yet anyway.
        now = time.time()
        for name, model in self.models.items():
            model.objects.bulk_create([model(n=0, sent_at=now) for _ in range(rows)])
            self.rows[name] = list(model.objects.order_by("pk"))
        models.Bulk.objects.bulk_create([models.Bulk(n=i, sent_at=now) for i in range(bulk_rows)])
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE live_app_tick, live_app_floortick, live_app_bulk")
        return ()

    def _save(self, table: str, number: int, atomic: bool) -> tuple[float, float]:
        """Update one row through the ORM; (its sent_at, seconds until save() returned)."""
        from django.db import transaction

        rows = self.rows[table]
        row = rows[number % len(rows)]
        row.n += 1
        row.sent_at = sent_at = time.time()
        if atomic:
            with transaction.atomic():
                row.save()
        else:
            row.save()
        return sent_at, time.time() - sent_at

    def paced(
        self, table: str, rate: float, begin: float, start: float, end: float, atomic: bool
    ) -> tuple[int, float, float, list[float]]:
        """Save `rate` times a second from `begin` to `end`.

        Returns how many saves had `start <= sent_at < end` (what each client
        should receive), the last of their `sent_at`s, how far behind schedule
        the writer ever fell (s), and how long each of those saves took (s):
        part of every latency sample.
        """
        counted, last, behind, number = 0, 0.0, 0.0, 0
        durations: list[float] = []
        while True:
            due = begin + number / rate
            if due >= end:
                return counted, last, behind, durations
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            sent_at, took = self._save(table, number, atomic)
            behind = max(behind, sent_at - due)
            if start <= sent_at < end:
                counted += 1
                last = sent_at
                durations.append(took)
            number += 1

    def flood(self, table: str, begin: float, start: float, end: float, atomic: bool) -> tuple[int, float]:
        """Save as fast as one connection can from `begin` until `end`.

        Returns how many saves had `start <= sent_at < end`, and the last of
        their `sent_at`s; the seconds from `begin` to `start` are the warm-up.
        """
        time.sleep(max(0.0, begin - time.time()))
        counted, last, number = 0, 0.0, 0
        while True:
            sent_at, _took = self._save(table, number, atomic)
            if sent_at >= end:
                return counted, last  # that last save is past the window: not counted
            if sent_at >= start:
                counted += 1
                last = sent_at
            number += 1

    def baseline(self, repeats: int) -> list[float]:
        """Seconds to fetch every Bulk row through Django and encode each as a DDP `added`."""
        from live_app.models import Bulk

        from dddp.documents import document_id
        from dddp.protocol import messages

        collection = Bulk._meta.label_lower
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            rows = list(Bulk.objects.values("id", "n", "sent_at"))
            [messages.added(collection, document_id(row.pop("id")), row) for row in rows]
            times.append(time.perf_counter() - began)
        return times
