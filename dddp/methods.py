"""DDP methods: registering a Python function as a method, and calling it for a client.

A method is a function whose first argument is the invocation (Meteor's `this`):

    @API.method
    def add_book(this, title, author_id):
        if this.user_id is None:
            raise MeteorError(403, "Log in to add books")
        ...

The remaining arguments are the client's `params`, EJSON-decoded. The return
value is sent as the `result`; raise `MeteorError` to send a client-safe error.

While a method runs, `current_invocation()` is its `this`: a model's
`MeteorIdField` (`dddp.fields`) draws a new row's id from the invocation's
random streams there, so that the id is the one the client's stub drew.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction

from dddp.log_throttle import LogThrottle, first_line, left_out, quote
from dddp.protocol.errors import (
    MeteorError,
    database_unavailable,
    internal_server_error,
    match_failed,
    method_not_found,
    must_be_logged_in,
)
from dddp.protocol.random import RandomGenerator, RandomStreams

logger = logging.getLogger("dddp.methods")
_failures = LogThrottle()  # a method failing again and again is logged once per interval


@dataclass(frozen=True)
class ConnectionInfo:
    """What a method may know about the client's connection."""

    id: str
    client_address: str = ""
    http_headers: dict[str, str] = field(default_factory=dict)


class MethodInvocation:
    """The `this` of a method call: who calls, on which connection, with which seed."""

    def __init__(
        self,
        name: str,
        *,
        connection: ConnectionInfo,
        user_id: Any = None,
        random_seed: str | None = None,
        set_user_id: Callable[[Any], None] | None = None,
        unblock: Callable[[], None] | None = None,
        login_token: str | None = None,
        set_login_token: Callable[[str | None], None] | None = None,
    ):
        self.name = name
        self.connection = connection
        self.user_id = user_id
        self.random_seed = random_seed
        #: The hash of the resume token this connection logged in with (dddp.accounts), or None.
        self.login_token = login_token
        self._set_user_id = set_user_id
        self._set_login_token = set_login_token
        self._unblock = unblock
        self.is_simulation = False  # server-side code never simulates
        self._random_streams: RandomStreams | None = None

    def random_stream(self, name: str) -> RandomGenerator:
        """Meteor's `DDP.randomStream(name)` in this invocation: a generator (`id()`,
        `hex_string()`, ...) seeded with the client's randomSeed and `name`, drawing what
        the client's stub drew from it; without a seed, the system's random source.
        Inserts into collection `c` draw from `/collection/c`."""
        if self._random_streams is None:
            self._random_streams = RandomStreams(self.random_seed)
        return self._random_streams.stream(name)

    @property
    def user(self) -> Any:
        """The logged-in Django user, or None; loaded once per invocation."""
        if self.user_id is None:
            return None
        if not hasattr(self, "_user"):
            from django.contrib.auth import get_user_model

            self._user = get_user_model()._default_manager.filter(pk=self.user_id).first()
        return self._user

    def unblock(self) -> None:
        """Let the connection's next messages be handled while this method runs on
        (Meteor's `this.unblock()`; D-84). Its `result` then comes when it returns,
        perhaps after those of later calls. Calling it again, or outside a session, does nothing."""
        if self._unblock is not None:
            self._unblock()

    def set_user_id(self, user_id: Any) -> None:
        """Log the connection in (or out, with None), as Meteor's `this.setUserId`.

        The connection's subscriptions then run again for the new user, and the
        client gets the difference before this method's `result` (A-4, D-59).
        """
        if self._set_user_id is None:
            raise RuntimeError("this connection does not support logging in")
        self._set_user_id(user_id)
        self.user_id = user_id
        self.__dict__.pop("_user", None)

    def set_login_token(self, hashed_token: str | None) -> None:
        """Tie the connection to a resume token's hash (or to none): when that token is
        revoked, in any server process, the connection is closed (A-4)."""
        if self._set_login_token is not None:
            self._set_login_token(hashed_token)
        self.login_token = hashed_token


_current: contextvars.ContextVar[MethodInvocation | None] = contextvars.ContextVar(
    "dddp_method_invocation", default=None
)


def current_invocation() -> MethodInvocation | None:
    """The `this` of the DDP method running here (in this greenlet), or None outside one."""
    return _current.get()


class Method:
    """A Python function registered as a DDP method under `name`."""

    def __init__(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        cpu_heavy: bool | Callable[[Sequence[Any]], bool] = False,
        login_required: bool = False,
    ):
        if not callable(func):
            raise TypeError(f"a DDP method must be callable, got {func!r}")
        self.func = func
        name = name or getattr(func, "__name__", None)
        if not name:
            raise TypeError(f"give a name for the DDP method {func!r}: it has no __name__")
        self.name = name
        self.signature = inspect.signature(func)
        #: Whether a call (with these params) spends long in `dddp.cpu_bound` (a password
        #: hash): the server runs only so many at once, so that they never take every worker.
        self.cpu_heavy = cpu_heavy
        #: Calls from a connection that is not logged in get 401 "Must be logged in".
        self.login_required = login_required
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __call__(self, this: MethodInvocation, *params: Any) -> Any:
        return self.func(this, *params)

    def __repr__(self) -> str:
        return f"<DDP method {self.name!r}>"

    def is_cpu_heavy(self, params: Sequence[Any]) -> bool:
        return bool(self.cpu_heavy(params) if callable(self.cpu_heavy) else self.cpu_heavy)

    def check_params(self, params: Sequence[Any]) -> None:
        """Raise 400 "Match failed" when `params` do not fit the function (D-43)."""
        try:
            self.signature.bind(None, *params)
        except TypeError as exc:
            raise match_failed(str(exc)) from None


def method(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    cpu_heavy: bool | Callable[[Sequence[Any]], bool] = False,
    login_required: bool = False,
) -> Any:
    """Mark a function as a DDP method; use as `@method` or `@method(name="books.add")`."""
    if func is None:
        return lambda f: Method(f, name, cpu_heavy, login_required)
    return Method(func, name, cpu_heavy, login_required)


def call_method(found: Method | None, name: str, params: Sequence[Any], this: MethodInvocation) -> Any:
    """Run a method for a client; return its result or raise the MeteorError to send.

    The method runs in one database transaction: if it raises, none of its writes
    are kept. An exception that is not a MeteorError is logged once with its
    traceback and reaches the client as 500 "Internal server error" (D-42).
    """
    if found is None:
        raise method_not_found(name)
    if found.login_required and this.user_id is None:
        raise must_be_logged_in()
    found.check_params(params)
    token = _current.set(this)
    try:
        return _run_retrying_a_lost_connection(found, this, params)
    except MeteorError:
        raise
    except (OperationalError, InterfaceError) as exc:
        if not _database_reachable():
            count = _failures.allow("database unavailable")
            if count is not None:  # one line, no traceback: the database's trouble, not the method's
                logger.error(
                    "DDP method %s: database unavailable: %s%s",
                    quote(name),
                    first_line(exc),
                    left_out(count),
                )
            raise database_unavailable() from exc
        count = _failures.allow((name, type(exc)))
        if count is not None:
            logger.exception("DDP method %s raised %s%s", quote(name), type(exc).__name__, left_out(count))
        raise internal_server_error() from exc
    except Exception as exc:
        count = _failures.allow((name, type(exc)))
        if count is not None:
            logger.exception("DDP method %s raised %s%s", quote(name), type(exc).__name__, left_out(count))
        raise internal_server_error() from exc
    finally:
        _current.reset(token)


class _QueriesDone:
    """An execute wrapper that notes whether any query of the method came back."""

    def __init__(self) -> None:
        self.any = False

    def __call__(self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        self.any = True
        return result


def _run_retrying_a_lost_connection(found: Method, this: MethodInvocation, params: Sequence[Any]) -> Any:
    """The method in its transaction; run once more on a new connection if the worker's
    connection turns out to have been lost before any of its queries came back.

    A worker keeps its connection between methods, and a connection the database
    cut meanwhile (a restart, a failover, an administrator) fails only when next
    used. The method's work so far is then nothing the database kept, so running
    it again is what the client would do on its own, minus the error.
    """
    done = _QueriesDone()
    try:
        with connection.execute_wrapper(done), transaction.atomic():
            return found.func(this, *params)
    except (OperationalError, InterfaceError) as exc:
        if done.any or not _connection_lost(exc):
            raise
    connection.close()  # the next query connects anew
    this._random_streams = None  # the client's ids are drawn again, from the start
    with transaction.atomic():
        return found.func(this, *params)


#: SQLSTATEs of a connection the server ended: admin_shutdown, crash_shutdown, cannot_connect_now.
_CONNECTION_ENDED = frozenset({"57P01", "57P02", "57P03"})


def _connection_lost(exc: Exception) -> bool:
    """Did the error come from a connection that is gone (rather than from a query)?"""
    code = getattr(exc.__cause__, "pgcode", None)
    return code is None or code in _CONNECTION_ENDED


def _database_reachable() -> bool:
    """After an OperationalError: is the connection still good (a deadlock, a timeout)?"""
    try:
        return connection.connection is not None and connection.is_usable()
    except Exception:  # noqa: BLE001 - any failure to ask means no
        return False
