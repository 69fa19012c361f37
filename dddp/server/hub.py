"""The Hub: every observer of this process, fed by the Listener, run by one greenlet.

Notification batches, re-reads after a lost connection, subscribing and
unsubscribing all go through one queue served by one greenlet, in order.

A new observer's first read runs on a loader greenlet (with its own database
connection; `dddp.server.first_reads`, which reads observers of one shape
waiting together in one query), so that a big publication does not hold up
every other observer's changes. Subscribing stays race-free: the observer's
channels are LISTENed before the read starts, so a change committed before
the read's query is in its result, and every change delivered from then on
is kept (`Observer.arrived`) and applied, in order, after the read is
installed. (One already in the result is applied again: the last one
delivered leaves the row as it is.)

Write fences (D-82): a method that wrote something ends with a NOTIFY on the
fence channel, after its transaction; since PostgreSQL delivers in commit
order, by the time the hub reaches the fence it has sent every data message
the method's changes caused, and the session may send `updated`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult
from gevent.queue import Queue

from dddp.changes import FENCE_CHANNEL, REVOKED_TOKENS_CHANNEL, Change, Reassembler
from dddp.protocol.errors import MeteorError, internal_server_error
from dddp.protocol.ids import random_id
from dddp.server.compiled import CompiledQuery, compile_queries
from dddp.server.first_reads import FirstReads, read_shape
from dddp.server.listener import Listener, Notification
from dddp.server.observer import Observer, ObserverKey, Rows, observer_key, publication_queries, shared_key
from dddp.server.retries import retrying_lost_connections
from dddp.server.routing import Routes
from dddp.server.session import deliveries_held
from dddp.server.workers import (
    STOP_GRACE,
    close_broken_connections,
    forget_queries,
)

if TYPE_CHECKING:
    from dddp.api import Publication, Registry
    from dddp.server.session import Session

logger = logging.getLogger("dddp.server")

# Greenlets running first reads of new observers, each with a database connection.
LOADERS = 2

# Notifications closer together than this (seconds) are a flood: see Hub._gather.
COALESCE_GAP = 0.002
COALESCE_WAIT = 0.002

# Calls run back to back for at most this long (seconds) before the loop serves others.
CALLS_SLICE = 0.002


class Hub:
    """Multiplexes subscriptions: one Observer per (publication, params, user)."""

    def __init__(self, registry: Registry, connect: Callable[[], Any], max_observers: int):
        self.registry = registry
        self.max_observers = max_observers  # DDDP_MAX_OBSERVERS
        self.observers: dict[ObserverKey, Observer] = {}
        # The same, filed by the collections and values their changes concern: a batch is
        # offered only to the observers it can concern.
        self._routes = Routes()
        # Each subscription as asked (publication, params, user) -> its observer's key, and back,
        # while that observer lives: users whose querysets compile alike share one.
        self._shared_keys: dict[ObserverKey, ObserverKey] = {}
        self._askers: dict[ObserverKey, set[ObserverKey]] = {}
        self._ready: dict[ObserverKey, AsyncResult[None]] = {}
        self._queue: Queue[tuple[Any, ...]] = Queue()
        self._batches: deque[list[Notification]] = deque()  # received, not yet dispatched
        self._last_batch_done = 0.0
        self._last_yield = 0.0
        self._reassembler = Reassembler()
        self._fences: dict[str, AsyncResult[None]] = {}
        self._fence_numbers = itertools.count(1)
        self.server_id = random_id()
        #: Called with each revoked token's hash, in the hub's greenlet (the server closes
        #: the sessions logged in with it).
        self.tokens_revoked: Callable[[str], None] = lambda hashed_token: None
        self.listener = Listener(
            connect, self._received, self._reconnected, always=(FENCE_CHANNEL, REVOKED_TOKENS_CHANNEL)
        )
        self._first_reads = FirstReads(LOADERS)
        self._greenlet = gevent.spawn(self._run)

    # --- called from session greenlets ----------------------------------------------

    def subscribe(
        self,
        session: Session,
        sub_id: Hashable,
        publication: type[Publication],
        params: list[Any],
        user_id: Any,
    ) -> ObserverKey:
        """Attach the subscription to its observer (made and loaded if new); raises MeteorError.

        Universal publications (the logged-in user's document) do not count toward
        DDDP_MAX_OBSERVERS: a full process must still show a user who logs in.
        """
        asked = observer_key(publication, params, user_id)
        key = self._shared_keys.get(asked)
        returned = compiled = None
        if key is None or key not in self._ready:
            returned, compiled = self._call(self._queries, publication, params, user_id)
            key = shared_key(asked, compiled)
        ready = self._ready.get(key)
        if ready is None:
            if (
                len(self._ready) >= self.max_observers
                and not publication.universal
                and len(self._ready) - self._universal_observers() >= self.max_observers
            ):
                # Each observer costs memory and work on every change of its tables: a
                # process serving this many distinct queries takes no more (the clients'
                # retries find one with room, or this one once some have ended).
                raise MeteorError(503, "Too many live queries on this server, retry later")
            ready = self._ready[key] = AsyncResult()
            try:
                observer = self._call(
                    Observer, self.registry, publication, params, user_id, returned, compiled
                )
                self._add(key, observer)
                logger.debug("observing %s%s", key[0], key[1])
                observer.arrived = []
                self.listener.listen(observer.channels)  # before the read: see the module docstring
                results = self._first_reads.read(observer, read_shape(observer))
                self._call(self._install, key, observer, results)
                ready.set(None)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting subscriber
                self._ready.pop(key, None)
                observer = self._remove(key)  # type: ignore[assignment]
                if observer is not None:
                    self.listener.unlisten(observer.channels)
                ready.set_exception(exc)
        ready.get()  # raises the first subscriber's exception to later ones too
        if not self._call(self._attach, key, session, sub_id):
            # Its last subscriber left while we waited: start a fresh one.
            return self.subscribe(session, sub_id, publication, params, user_id)
        # The next subscriber asking the same finds the observer without running get_queries.
        self._shared_keys[asked] = key
        self._askers.setdefault(key, set()).add(asked)
        return key

    def key_for(self, publication: type[Publication], params: list[Any], user_id: Any) -> ObserverKey:
        """The observer a subscription by this user would attach to (to skip a re-run that
        would land on the observer it has)."""
        asked = observer_key(publication, params, user_id)
        key = self._shared_keys.get(asked)
        if key is not None and key in self._ready:
            return key
        _returned, compiled = self._call(self._queries, publication, params, user_id)
        return shared_key(asked, compiled)

    def _queries(
        self, publication: type[Publication], params: list[Any], user_id: Any
    ) -> tuple[Any, list[CompiledQuery] | None]:
        """What get_queries returns, and its querysets compiled (`dddp.server.compiled`):
        in the hub's greenlet, whose connection object Django's compiler then reuses."""
        returned = publication_queries(self.registry, publication, params, user_id)
        return returned, compile_queries(returned)

    def _universal_observers(self) -> int:
        names = {publication.publication_name() for publication in self.registry.universal_publications}
        return sum(key[0] in names for key in self._ready)

    def unsubscribe(self, session: Session, sub_id: Hashable, key: ObserverKey) -> None:
        """Withdraw the subscription's documents from the session (D-53) and detach it."""
        self._call(self._detach, session, sub_id, key, True)

    def forget(self, session: Session, sub_id: Hashable, key: ObserverKey) -> None:
        """Detach a subscription of a session that is gone: nothing to send."""
        self._call(self._detach, session, sub_id, key, False)

    def new_fence(self) -> str:
        token = f"{self.server_id}.{next(self._fence_numbers)}"
        self._fences[token] = AsyncResult()
        return token

    def wait_fence(self, token: str, timeout: float) -> bool:
        """Wait until the hub has dispatched everything committed before the fence."""
        fence = self._fences.get(token)
        try:
            if fence is not None:
                fence.wait(timeout)
            return fence is None or fence.ready()
        finally:
            self._fences.pop(token, None)

    def drop_fence(self, token: str) -> None:
        self._fences.pop(token, None)

    def stop(self, timeout: float = STOP_GRACE) -> None:
        """Stop the hub's greenlet, its loaders and the Listener, within about `timeout` seconds.

        A first read still running is abandoned: its subscriber is gone too.
        """
        deadline = time.monotonic() + timeout
        self._greenlet.kill(block=False)
        self._first_reads.stop(timeout)
        self.listener.stop(max(0.0, deadline - time.monotonic()))
        self._greenlet.join(max(0.0, deadline - time.monotonic()))

    # --- the hub's greenlet ------------------------------------------------------------

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run `func(*args)` in the hub's greenlet, in queue order; return or raise its outcome."""
        outcome: AsyncResult[Any] = AsyncResult()
        self._queue.put(("call", func, args, outcome))
        return outcome.get()

    def _received(self, batch: list[Notification]) -> None:
        self._batches.append(batch)
        self._queue.put(("batch",))  # wakes the hub; the batches are taken from _batches

    def _reconnected(self) -> None:
        self._reassembler.reset()
        self._queue.put(("reload",))

    def _run(self) -> None:
        while True:
            command = self._queue.get()
            try:
                # Changes go first, before any call queued earlier: fifty subscribers
                # attaching to a 10,000-row publication (each sent its documents) would
                # otherwise hold every client's live data for seconds. Each command is
                # whole, so no order matters for correctness: a change reaching an
                # observer before a queued attach is sent to the new subscriber as part
                # of the current documents, one before a queued first read's install
                # waits in the observer's `arrived`, as one during the read does.
                if self._batches:
                    batch = self._gather()
                    with deliveries_held():
                        self._process(batch)
                    self._last_batch_done = time.monotonic()
                if command[0] == "call":
                    _, func, args, outcome = command
                    try:
                        outcome.set(func(*args))
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        outcome.set_exception(exc)
                    # Many calls queued (subscribers attaching, each sent its documents)
                    # would otherwise run back to back without the loop serving anyone else.
                    if time.monotonic() - self._last_yield >= CALLS_SLICE:
                        gevent.sleep(0)
                        self._last_yield = time.monotonic()
                elif command[0] == "reload":
                    self._routes.forget_held()
                    for key, observer in list(self.observers.items()):
                        if observer.loaded:
                            self._guarded(observer, observer.load)
                            self._routes.reloaded(key)
                        else:  # its first read is running: what it misses is lost
                            observer.stale = True
            except Exception:
                logger.exception("the hub failed to process %s", command[0])
                close_broken_connections()
            finally:
                forget_queries()

    def _gather(self) -> list[Notification]:
        """Every batch received so far: one dispatch, so one write per session.

        When notifications come faster than every `COALESCE_GAP`, the hub
        first waits `COALESCE_WAIT` for more: under a flood of commits each
        session then gets one write for several changes instead of one each,
        and the time saved in system calls goes to the writers. At a slower
        pace nothing waits.
        """
        if time.monotonic() - self._last_batch_done < COALESCE_GAP:
            gevent.sleep(COALESCE_WAIT)
        batch: list[Notification] = []
        while self._batches:
            batch += self._batches.popleft()
        return batch

    def _process(self, batch: list[Notification]) -> None:
        pending: list[Change] = []
        for channel, payload in batch:
            if channel == FENCE_CHANNEL:
                self._dispatch(pending)
                pending = []
                fence = self._fences.get(payload)
                if fence is not None:
                    fence.set(None)
                continue
            if channel == REVOKED_TOKENS_CHANNEL:
                self.tokens_revoked(payload)
                continue
            try:
                change = self._reassembler.feed(channel, payload)
            except ValueError as exc:
                logger.error("dropped a malformed notification on %s: %s", channel, exc)
                continue
            if change is not None:
                pending.append(change)
        self._dispatch(pending)

    def _add(self, key: ObserverKey, observer: Observer) -> None:
        self.observers[key] = observer
        self._routes.add(key, observer)

    def _remove(self, key: ObserverKey) -> Observer | None:
        self._routes.remove(key)
        return self.observers.pop(key, None)

    def _dispatch(self, changes: list[Change]) -> None:
        if not changes:
            return
        # Only the observers these changes can concern (dddp.server.routing), in the order
        # they were made, whatever else the process observes.
        for key, observer, relevant in self._routes.route(changes):
            if observer.loaded:
                self._guarded(observer, observer.apply, relevant, self._routes.joined_now)
                self._routes.applied(key, relevant)
            elif observer.arrived is not None:
                observer.arrived += relevant  # applied once its first read is installed

    def _install(self, key: ObserverKey, observer: Observer, results: list[Rows]) -> None:
        """A first read is done: take it, then apply what arrived meanwhile (no subscriber
        yet); from now on the observer is offered only the changes that can concern it."""
        observer.install(results)
        arrived, observer.arrived = observer.arrived or [], None
        if arrived:
            retrying_lost_connections(observer.apply, arrived)
        if observer.stale:
            observer.stale = False
            retrying_lost_connections(observer.load)
        self._routes.index(key, observer)

    def _guarded(self, observer: Observer, func: Callable[..., None], *args: Any) -> None:
        """Run an observer step; if the publication fails, end its subscriptions (D-54).

        A lost database connection is not the publication's fault: the step is
        retried, with backoff, on a new connection, for as long as PostgreSQL
        takes to come back (up to about a minute).
        """
        try:
            retrying_lost_connections(func, *args)
        except Exception as exc:
            if isinstance(exc, MeteorError):
                error = exc
            else:
                logger.exception("publication %s failed", observer.name)
                error = internal_server_error()
            self._fail(observer, error)

    def _fail(self, observer: Observer, error: MeteorError) -> None:
        key = next((k for k, o in self.observers.items() if o is observer), None)
        for session, sub_id in list(observer.subscribers):
            self._detach(session, sub_id, key, True)
            session.subscription_failed(sub_id, error)

    def _attach(self, key: ObserverKey, session: Session, sub_id: Hashable) -> bool:
        observer = self.observers.get(key)
        if observer is None:
            return False
        observer.attach(session, sub_id)
        return True

    def _detach(self, session: Session, sub_id: Hashable, key: ObserverKey | None, withdraw: bool) -> None:
        observer = self.observers.get(key) if key is not None else None
        if observer is not None:
            observer.detach(session, sub_id)
            if not observer.subscribers:
                assert key is not None
                logger.debug("stopped observing %s%s", key[0], key[1])
                self._remove(key)
                self._ready.pop(key, None)
                for asked in self._askers.pop(key, ()):
                    if self._shared_keys.get(asked) == key:
                        del self._shared_keys[asked]
                gevent.spawn(self.listener.unlisten, observer.channels)
        if withdraw:
            session.withdraw(sub_id)
