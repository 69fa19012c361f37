"""`manage.py dddp`: runs the dddp server for this project, with the same options.

By the time a management command runs, manage.py has imported Django, too
late for gevent's monkey-patching, which must come first. So the command
replaces this process with `python -m dddp`, passing on the settings module
and the Python path, and the server patches before it imports Django.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from dddp.server.options import build_parser

# Run as `python -c LAUNCHER prog args...`: sys.argv is then ["-c", prog, *args].
LAUNCHER = "import sys; from dddp.server.main import main; sys.exit(main(sys.argv[2:], prog=sys.argv[1]))"


class Command(BaseCommand):
    help = build_parser().description or ""

    def run_from_argv(self, argv: list[str]) -> None:
        prog = f"{os.path.basename(argv[0])} {argv[1]}"
        args = argv[2:]
        # --help and bad arguments end here, in a process that exits as usual:
        # its atexit handlers (which stop an embedded PostgreSQL) would not
        # run after the exec.
        build_parser(prog).parse_args(args)
        env = dict(os.environ)
        env["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
        # manage.py's directory (sys.path[0]) holds the project's packages.
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        env["PYTHONPATH"] = os.pathsep.join(
            dict.fromkeys(paths + env.get("PYTHONPATH", "").split(os.pathsep))
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # The child parses the options itself, so --help and errors read the same.
        os.execve(sys.executable, [sys.executable, "-c", LAUNCHER, prog, *args], env)

    def handle(self, *args: Any, **options: Any) -> None:  # pragma: no cover - replaced by run_from_argv
        raise RuntimeError("manage.py dddp runs through run_from_argv")
