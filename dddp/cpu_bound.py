"""CPU-bound work that must not stall the server's event loop (password hashing).

Django's default password hasher spends hundreds of milliseconds of CPU on each
check. Run in a greenlet, that would stop every other client of the process for
as long. So the Django side calls `run(func, *args)`, and the dddp server
installs a runner that computes in a few real threads off the event loop
(`dddp.server.cpu_threads`). Elsewhere (a management command, a test, a WSGI
process) nothing is installed and the work runs where it is called, as Django
would run it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

Runner = Callable[..., Any]

_runner: Runner | None = None


def install(runner: Runner | None) -> None:
    """Make `runner(func, *args)` compute every `run` from now on (None: inline again)."""
    global _runner
    _runner = runner


def run(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)`, through the installed runner if there is one."""
    if _runner is None:
        return func(*args)
    return _runner(func, *args)  # type: ignore[no-any-return]
