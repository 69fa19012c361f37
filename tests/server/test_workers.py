"""The method workers' pool, as its jobs see Django (its stopping is in test_shutdown.py)."""

from __future__ import annotations

import pytest
from django.db import connection

from dddp.server.workers import WorkerPool
from tests.testapp.models import Note


@pytest.mark.django_db(transaction=True)
def test_a_job_leaves_no_query_log_behind_even_with_debug_on(settings) -> None:  # type: ignore[no-untyped-def]
    """Issue 9, attack 3: the server's connections outlive any request, so Django's
    per-request reset of the log never comes; with DEBUG it grew to gigabytes."""
    settings.DEBUG = True
    pool = WorkerPool(1)
    try:

        def query() -> int:
            Note.objects.filter(text="x" * 10000).count()
            return len(connection.queries_log)

        assert pool.run(query) == 1  # logged while the job runs, as Django does with DEBUG
        assert len(connection.queries_log) == 0  # and forgotten once it is done
    finally:
        pool.stop()
