"""The tests' PostgreSQL: scratch databases beside the test database, and server processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil


@contextmanager
def scratch_database(name: str, django_db_blocker: Any) -> Iterator[str]:
    """A new, empty database `name` on the tests' PostgreSQL, as a URL; dropped afterwards."""
    from django.db import connection

    from dddp.database import database_url

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(connection.settings_dict, name=name)
    finally:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The running postgres server processes whose data folder is `data_dir`."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(data_dir) in (process.info["cmdline"] or []):
            found.append(process)
    return found
