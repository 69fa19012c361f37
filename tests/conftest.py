"""Fixtures: a real PostgreSQL (pytest-django's test database) and real dddp servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None, django_db_blocker: Any) -> Iterator[None]:
    """The test database, always: server processes need it even when no test is marked django_db.

    (pytest-django's own fixture creates only the databases that marked tests use.)
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def test_database_url(django_db_setup: None, django_db_blocker: object) -> str:
    """A URL of the test database, for server processes to use."""
    from django.db import connection

    from dddp.database import database_url

    return database_url(connection.settings_dict)


@pytest.fixture(scope="session")
def start_server(test_database_url: str) -> Iterator[Callable[..., ServerProcess]]:
    """Start `dddp` processes on free ports: `start_server(DDDP_HEARTBEAT_INTERVAL="0.2")`."""
    started: list[ServerProcess] = []

    def start(*args: str, command: list[str] | None = None, **settings: str | None) -> ServerProcess:
        env: dict[str, str | None] = {"DATABASE_URL": test_database_url, **settings}
        server_args = list(args) or ["--settings", "tests.settings", "127.0.0.1:0"]
        server = ServerProcess(server_args, env, command=command)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def start_module_server(start_server: Callable[..., ServerProcess]) -> Iterator[Callable[..., ServerProcess]]:
    """`start_server` for a module's own servers: they stop when the module ends, so that
    their database connections do not add up past PostgreSQL's limit over the run."""
    started: list[ServerProcess] = []

    def start(*args: str, **settings: str | None) -> ServerProcess:
        server = start_server(*args, **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """One shared server with default settings, for tests that do not change any."""
    return start_server().wait_until_listening()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[DDPClient]:
    """A client connected (DDP version 1) to the shared server."""
    with DDPClient(server.ws_url) as ddp:
        assert ddp.connect()["msg"] == "connected"
        yield ddp


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dddp")
    group.addoption(
        "--random-seeds",
        default="1,2,3",
        help="comma-separated seeds of the randomized live-data test (default 1,2,3)",
    )
    group.addoption(
        "--random-steps",
        type=int,
        default=60,
        help="random ORM operations per seed in the randomized live-data test (default 60)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "random_seed" in metafunc.fixturenames:
        seeds = [int(seed) for seed in metafunc.config.getoption("random_seeds").split(",") if seed]
        metafunc.parametrize("random_seed", seeds)
