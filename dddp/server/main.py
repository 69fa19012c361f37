"""The `dddp` command: `dddp`, `python -m dddp` and `manage.py dddp` all end up here.

gevent must patch the standard library before anything else imports it, and
psycopg2 must wait cooperatively: both happen first in `main`, before Django is
imported. This module therefore imports only the standard library at the top.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

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
    # A log record asks for its thread's and process's names by default: under gevent's
    # patched threading, `current_thread()` was 13% of the server's CPU while 10,000
    # clients connected with INFO logging (a line each). dddp's format uses neither, and
    # every greenlet is in the main thread anyway.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
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
    finally:
        from dddp.embedded import leave

        leave()  # while this process can still start pg_ctl (see `leave`)


#: The cyclic garbage collector's thresholds while serving (Python's are 700, 10, 10).
#: Each client's session, and each observer's querysets, are about a hundred objects
#: that live as long as it does. With Python's thresholds, 10,000 clients connecting
#: and subscribing (bench/observers.py's 10,000 rung) set off 1,600 young collections
#: and 11 full ones: 2.2 s of the server's CPU, in pauses of up to 420 ms. With these,
#: 230 young and 2 full ones: 0.7 s, in pauses of at most 63 ms. A young collection
#: walks what was allocated since the last one and survived; larger thresholds
#: (20,000 and 20) made fewer, but pauses of up to 180 ms.
GC_THRESHOLDS = (10_000, 10, 10)


class StartupError(Exception):
    """A problem the user can fix, reported as one line instead of a traceback."""


def serve(options: Options) -> int:
    add_to_python_path(options.pythonpath)
    if options.settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = options.settings
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise StartupError("no Django settings: pass --settings MODULE or set DJANGO_SETTINGS_MODULE")
    setup_django()
    # Bind first: a start that fails on the port must not have started anything
    # (the hub's LISTEN connection, heartbeats) that would then log on the way out.
    http_server = listen(options.host, options.port)
    try:
        server_app = build_app(options.serve_django, options.sockjs_test_services)
    except BaseException:
        http_server.close()
        raise
    http_server.application = server_app
    return run_until_stopped(http_server, server_app)


def add_to_python_path(directories: list[str]) -> None:
    """`--pythonpath` directories first, then the current directory, as gunicorn and daphne do.

    `python -m dddp` and `manage.py` already have it; the `dddp` console script
    would otherwise have only its own bin directory, and the brief's
    `DJANGO_SETTINGS_MODULE=mysite.settings dddp` could not import `mysite`.
    Python's own opt-out is honoured: with `-P` or PYTHONSAFEPATH set, the
    current directory is not added.
    """
    paths = [os.path.abspath(path) for path in directories]
    if not sys.flags.safe_path:
        paths.append(os.getcwd())
    present = {os.path.abspath(entry or os.curdir) for entry in sys.path}
    for path in reversed(paths):
        if path not in present:
            sys.path.insert(0, path)


def setup_django() -> None:
    import django
    from django.core import checks

    settings_module = os.environ["DJANGO_SETTINGS_MODULE"]
    import_settings(settings_module)
    try:
        django.setup()
    except Exception as exc:  # noqa: BLE001 - any error in the user's apps or ddp.py
        raise StartupError(
            f"cannot set up Django with settings {settings_module!r}: {_describe(exc)}"
        ) from None
    messages = [m for m in checks.run_checks() if not m.is_silenced()]
    for message in messages:
        if not message.is_serious():
            logger.warning("system check %s", _check_text(message))
    errors = [m for m in messages if m.is_serious()]
    if errors:
        raise StartupError("system check failed: " + "; ".join(_check_text(m) for m in errors))
    from django.db import OperationalError, connection

    try:
        connection.ensure_connection()
    except OperationalError as exc:
        raise StartupError(
            f"cannot connect to the database {_database_address(connection.settings_dict)}: "
            f"{_first_line(exc)}"
        ) from None
    finally:
        connection.close()


def import_settings(module: str) -> None:
    """Import the settings module, or say which module failed to import and why."""
    import importlib

    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and "." not in missing and module.startswith(missing):
            raise StartupError(
                f"cannot load Django settings {module!r}: there is no module {missing!r} on the "
                f"Python path (run dddp from the folder that holds {missing!r}, or pass --pythonpath DIR)"
            ) from None
        if missing and (module == missing or module.startswith(missing + ".")):
            package, _, name = missing.rpartition(".")
            where = getattr(sys.modules.get(package), "__path__", [package])[0]
            raise StartupError(
                f"cannot load Django settings {module!r}: there is no module {name!r} in {where}"
            ) from None
        raise StartupError(f"cannot load Django settings {module!r}: {_describe(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - anything the user's settings raise
        raise StartupError(f"cannot load Django settings {module!r}: {_describe(exc)}") from None


def build_app(serve_django: bool, sockjs_test_services: bool = False) -> DDPServer:
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    from dddp import cpu_bound
    from dddp.api import API
    from dddp.conf import dddp_settings
    from dddp.rate_limits import RateLimiter
    from dddp.server.app import DDPServer
    from dddp.server.cpu_threads import CPUThreads

    django_app = None
    if serve_django:
        django_app = get_wsgi_application()
        if settings.DEBUG and "django.contrib.staticfiles" in settings.INSTALLED_APPS:
            django_app = _static_files_handler(django_app)  # as runserver does in DEBUG
    # Password hashes (dddp.accounts) compute in threads of their own, off the event loop.
    hashing_threads = CPUThreads(int(dddp_settings.PASSWORD_HASHING_THREADS))
    cpu_bound.install(hashing_threads.run)
    return DDPServer(
        API,
        django_app=django_app,
        max_message_size=dddp_settings.MAX_MESSAGE_SIZE,
        max_send_queue_bytes=dddp_settings.MAX_SEND_QUEUE_BYTES,
        max_subscriptions=dddp_settings.MAX_SUBSCRIPTIONS,
        max_pending_requests=dddp_settings.MAX_PENDING_REQUESTS,
        max_observers_per_connection=dddp_settings.MAX_OBSERVERS_PER_CONNECTION,
        max_observers=dddp_settings.MAX_OBSERVERS,
        max_params_size=dddp_settings.MAX_PARAMS_SIZE,
        allowed_origins=list(dddp_settings.ALLOWED_ORIGINS),
        heartbeat_interval=dddp_settings.HEARTBEAT_INTERVAL,
        heartbeat_timeout=dddp_settings.HEARTBEAT_TIMEOUT,
        connect_timeout=dddp_settings.CONNECT_TIMEOUT,
        method_workers=dddp_settings.METHOD_WORKERS,
        sockjs_heartbeat_delay=dddp_settings.SOCKJS_HEARTBEAT_DELAY,
        sockjs_disconnect_delay=dddp_settings.SOCKJS_DISCONNECT_DELAY,
        sockjs_url=dddp_settings.SOCKJS_URL,
        sockjs_prefix=dddp_settings.SOCKJS_PREFIX,
        sockjs_response_limit=dddp_settings.SOCKJS_RESPONSE_LIMIT,
        sockjs_max_sessions_per_address=dddp_settings.SOCKJS_MAX_SESSIONS_PER_ADDRESS,
        sockjs_test_services=sockjs_test_services,
        connect_listener=connect_listener,
        rate_limits=RateLimiter.from_settings(dddp_settings.RATE_LIMITS),
        cpu_heavy_calls=hashing_threads.size,
    )


def _static_files_handler(django_app: Any) -> Any:
    """Django's DEBUG static files handler, with a 404 for a path out of the static folders.

    Django's own answers `/static/../../etc/passwd` with a 500 and a traceback:
    `safe_join` raises SuspiciousFileOperation, which its handler lets through
    (it turns only Http404 into a response). It serves no file either way.
    """
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.exceptions import SuspiciousOperation
    from django.core.handlers.exception import response_for_exception
    from django.http import Http404

    class Handler(StaticFilesHandler):  # type: ignore[misc]
        def serve(self, request: Any) -> Any:
            try:
                return super().serve(request)
            except SuspiciousOperation:
                return response_for_exception(request, Http404("no such static file"))

    return Handler(django_app)


def connect_listener() -> object:
    """A new psycopg2 connection to the default database, for the Listener."""
    import psycopg2
    from django.db import connections

    return psycopg2.connect(**connections["default"].get_connection_params())


def listen(host: str, port: int) -> WSGIServer:
    """The bound, listening server socket; its `application` is set once it is built."""
    from dddp.conf import dddp_settings
    from dddp.server.handler import RequestHandler
    from dddp.server.http_server import HTTPServer

    http_server = HTTPServer(
        (host, port),
        None,
        backlog=2048,  # gevent's 128 drops connections when thousands of clients (re)connect at once
        handler_class=RequestHandler,
        log=logging.getLogger("dddp.server.http"),
        error_log=logging.getLogger("dddp.server.http"),
        request_head_timeout=dddp_settings.REQUEST_HEAD_TIMEOUT,
        request_body_timeout=dddp_settings.REQUEST_BODY_TIMEOUT,
    )
    try:
        http_server.init_socket()
    except OSError as exc:
        # gevent appends the address to strerror; the message already says it.
        reason = exc.strerror.split(": (")[0] if exc.strerror else str(exc)
        raise StartupError(f"cannot listen on {host}:{port}: {reason}") from None
    return http_server


def run_until_stopped(http_server: WSGIServer, server_app: DDPServer) -> int:
    """Serve until SIGTERM or SIGINT, then stop gracefully and return 0.

    The process exits at most DDDP_SHUTDOWN_TIMEOUT + `STOP_OVERRUN` (1 s)
    after the signal (see `DDPServer.shut_down`). A second signal during the
    stop cuts it short: running methods are abandoned at once.
    """
    import gc
    import signal
    import time

    import gevent
    from gevent.event import Event

    from dddp import __version__
    from dddp.conf import dddp_settings

    stop, hurry = Event(), Event()
    signalled: list[float] = []  # when the first signal arrived: the stop's deadline counts from it

    def on_signal() -> None:
        if not stop.is_set():
            signalled.append(time.monotonic())
            stop.set()
        elif not hurry.is_set():
            logger.warning("second signal: stopping now")
            hurry.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, on_signal)
    http_server.start()
    # Everything loaded so far lives as long as the process: keep it out of the
    # garbage collector's full passes, which otherwise walk it again and again.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
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
    # Stop accepting. (The server has no pool of handlers, so there is nothing
    # for `http_server.stop` to wait for: a Django request still running is
    # cut when the process exits.)
    http_server.close()
    server_app.shut_down(dddp_settings.SHUTDOWN_TIMEOUT, started=signalled[0], hurry=hurry)
    logger.info("stopped after %.2fs", time.monotonic() - signalled[0])
    return 0


def _describe(exc: BaseException) -> str:
    """`FieldError: Cannot resolve keyword... (bookstore/ddp.py, line 12)`: what and where.

    The place is the deepest frame of the traceback outside the standard
    library and installed packages: the user's own line, where there is one.
    """
    import sysconfig
    import traceback

    installed = tuple(
        os.path.realpath(p) + os.sep
        for p in {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    )
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        frames.append(traceback.FrameSummary(exc.filename, exc.lineno or 0, ""))
    own = [f for f in frames if not os.path.realpath(f.filename).startswith(installed)]
    reason = exc.msg if isinstance(exc, SyntaxError) else _first_line(exc)  # str() has the place too
    text = f"{type(exc).__name__}: {reason}"
    if own:
        text += f" ({os.path.relpath(own[-1].filename)}, line {own[-1].lineno})"
    return text


def _database_address(settings_dict: dict[str, object]) -> str:
    """`'postgres' at 127.0.0.1:5432 as user 'app'`: what a connection attempt tried."""
    host = str(settings_dict.get("HOST") or "localhost")
    port = str(settings_dict.get("PORT") or "5432")
    where = f"socket {host} port {port}" if host.startswith("/") else f"{host}:{port}"
    text = f"{settings_dict.get('NAME')!r} at {where}"
    if settings_dict.get("USER"):
        text += f" as user {settings_dict['USER']!r}"
    return text


def _check_text(message: object) -> str:
    """A system check message on one line: `dddp.W001 Unknown setting... (hint: ...)`."""
    from django.core.checks import CheckMessage

    assert isinstance(message, CheckMessage)
    obj = "" if message.obj is None else f"{message.obj}: "
    text = f"{message.id} {obj}{message.msg}"
    if message.hint:
        text += f" (hint: {message.hint})"
    return " ".join(text.split())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
