"""The `dddp` command: `dddp`, `python -m dddp` and `manage.py dddp` all end up here.

gevent must patch the standard library before anything else imports it, and
psycopg2 must wait cooperatively: both happen first in `main`, before Django is
imported. This module therefore imports only the standard library at the top.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: importing these for real must wait for the patch
    from gevent.pywsgi import WSGIServer

    from dddp.server.app import DDPServer
    from dddp.server.options import Options

logger = logging.getLogger("dddp.server")

#: Set when patching: whether Django was already imported then (it must not be).
DJANGO_WAS_IMPORTED_BEFORE_PATCH: bool | None = None


def patch_for_gevent() -> None:
    """The one place that monkey-patches: stdlib for gevent, psycopg2 for green waits."""
    global DJANGO_WAS_IMPORTED_BEFORE_PATCH
    DJANGO_WAS_IMPORTED_BEFORE_PATCH = "django" in sys.modules
    import gevent

    # Each spawn would otherwise keep its spawner's stack frames alive (about
    # 2 KiB per client); the server never needs the greenlet tree.
    gevent.config.track_greenlet_tree = False
    from gevent import monkey

    monkey.patch_all()
    import psycogreen.gevent

    psycogreen.gevent.patch_psycopg()


def main(argv: list[str] | None = None, prog: str = "dddp") -> int:
    """Entry point of the console script and of `python -m dddp`."""
    patch_for_gevent()
    from dddp.server.options import parse_options

    options = parse_options(argv, prog)
    logging.basicConfig(
        level=options.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return serve(options)
    except StartupError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1


class StartupError(Exception):
    """A problem the user can fix, reported as one line instead of a traceback."""


def serve(options: Options) -> int:
    for path in reversed(options.pythonpath):
        sys.path.insert(0, os.path.abspath(path))
    if options.settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = options.settings
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise StartupError("no Django settings: pass --settings MODULE or set DJANGO_SETTINGS_MODULE")
    setup_django()
    server_app = build_app(options.serve_django)
    http_server = listen(options.host, options.port, server_app)
    return run_until_stopped(http_server, server_app)


def setup_django() -> None:
    import django
    from django.core import checks

    try:
        django.setup()
    except Exception as exc:  # noqa: BLE001 - any import error in the user's settings
        raise StartupError(
            f"cannot load Django settings {os.environ['DJANGO_SETTINGS_MODULE']!r}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from None
    errors = [m for m in checks.run_checks() if m.is_serious()]
    if errors:
        raise StartupError("system check failed: " + "; ".join(f"{m.id} {m.msg}" for m in errors))
    from django.db import OperationalError, connection

    try:
        connection.ensure_connection()
    except OperationalError as exc:
        raise StartupError(f"cannot connect to the database: {_first_line(exc)}") from None
    finally:
        connection.close()


def build_app(serve_django: bool) -> DDPServer:
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    from dddp.api import API
    from dddp.conf import dddp_settings
    from dddp.server.app import DDPServer

    django_app = None
    if serve_django:
        django_app = get_wsgi_application()
        if settings.DEBUG and "django.contrib.staticfiles" in settings.INSTALLED_APPS:
            from django.contrib.staticfiles.handlers import StaticFilesHandler

            django_app = StaticFilesHandler(django_app)  # as runserver does in DEBUG
    return DDPServer(
        API,
        django_app=django_app,
        max_message_size=dddp_settings.MAX_MESSAGE_SIZE,
        max_send_queue_bytes=dddp_settings.MAX_SEND_QUEUE_BYTES,
        max_subscriptions=dddp_settings.MAX_SUBSCRIPTIONS,
        heartbeat_interval=dddp_settings.HEARTBEAT_INTERVAL,
        heartbeat_timeout=dddp_settings.HEARTBEAT_TIMEOUT,
        method_workers=dddp_settings.METHOD_WORKERS,
        connect_listener=connect_listener,
    )


def connect_listener() -> object:
    """A new psycopg2 connection to the default database, for the Listener."""
    import psycopg2
    from django.db import connections

    return psycopg2.connect(**connections["default"].get_connection_params())


def listen(host: str, port: int, app: DDPServer) -> WSGIServer:
    from gevent.pywsgi import WSGIServer
    from geventwebsocket.handler import WebSocketHandler

    http_server = WSGIServer(
        (host, port),
        app,
        backlog=2048,  # gevent's 128 drops connections when thousands of clients (re)connect at once
        handler_class=WebSocketHandler,
        log=logging.getLogger("dddp.server.http"),
        error_log=logging.getLogger("dddp.server.http"),
    )
    try:
        http_server.init_socket()
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return http_server


def run_until_stopped(http_server: WSGIServer, server_app: DDPServer) -> int:
    import gc
    import signal

    import gevent
    from gevent.event import Event

    from dddp import __version__
    from dddp.conf import dddp_settings

    stop = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    http_server.start()
    # Everything loaded so far lives as long as the process: keep it out of the
    # garbage collector's full passes, which otherwise walk it again and again.
    gc.collect()
    gc.freeze()
    host, port = http_server.address[:2]
    logger.info(
        "dddp %s listening on http://%s:%d/ (DDP at ws://%s:%d/websocket)",
        __version__,
        host,
        port,
        host,
        port,
    )
    stop.wait()
    logger.info("shutting down: %d connection(s) open", len(server_app.sessions))
    http_server.close()  # stop accepting; open connections go on
    server_app.shut_down(dddp_settings.SHUTDOWN_TIMEOUT)
    http_server.stop(timeout=1)
    logger.info("stopped")
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
