"""The `dddp` command line: one parser for `dddp`, `python -m dddp` and `manage.py dddp`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    settings: str | None
    pythonpath: list[str]
    serve_django: bool
    log_level: str
    sockjs_test_services: bool = False


def parse_addrport(text: str) -> tuple[str, int]:
    """`8000`, `:8000`, `0.0.0.0:8000` or `[::1]:8000` into (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected [host:]port with a port from 0 to 65535, got {text!r}")
    return host, int(port)


def build_parser(prog: str = "dddp") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Serve Django DDP: Meteor's DDP protocol over WebSocket at /websocket, "
            "and the Django project's own pages on every other path, on one port."
        ),
        epilog=(
            "The Django settings module comes from --settings or DJANGO_SETTINGS_MODULE. "
            "Stop with Ctrl-C or SIGTERM: the server stops accepting, lets running "
            "methods finish (DDDP_SHUTDOWN_TIMEOUT seconds), then closes every socket; "
            "it exits at most 1 s after that timeout (a second signal: at once)."
        ),
    )
    parser.add_argument(
        "addrport",
        nargs="?",
        default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
        type=parse_addrport,
        metavar="[HOST:]PORT",
        help=f"address to listen on (default {DEFAULT_HOST}:{DEFAULT_PORT}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--settings",
        metavar="MODULE",
        help="Django settings module, e.g. myproject.settings (default: $DJANGO_SETTINGS_MODULE)",
    )
    parser.add_argument(
        "--pythonpath",
        metavar="DIR",
        action="append",
        default=[],
        help="directory to add to the Python path, e.g. your project's root (repeatable)",
    )
    parser.add_argument(
        "--no-django",
        dest="serve_django",
        action="store_false",
        help="serve only DDP; other paths get 404 instead of the Django site",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much the server logs to stderr (default INFO: one line per connection)",
    )
    parser.add_argument(
        "--sockjs-test-services",
        action="store_true",
        help=(
            "a conformance tool for the sockjs-protocol test suite: also serve the four SockJS "
            "services it expects (/echo, /close, /disabled_websocket_echo, /cookie_needed_echo), "
            "which speak no DDP; off by default, not for production"
        ),
    )
    return parser


def parse_options(argv: list[str] | None = None, prog: str = "dddp") -> Options:
    args = build_parser(prog).parse_args(argv)
    host, port = args.addrport
    return Options(
        host,
        port,
        args.settings,
        args.pythonpath,
        args.serve_django,
        args.log_level,
        args.sockjs_test_services,
    )
