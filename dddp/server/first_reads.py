"""New observers' first reads: those of one shape, waiting together, read as one query.

Ten thousand clients subscribing to `BooksByAuthor(author_id)`, each with
its own author, make ten thousand observers whose querysets differ only in a
parameter. Each first read alone costs a round trip and the rows' conversion,
on one of LOADERS greenlets. Here the reads that wait for a loader, of
observers whose SQL is the same but for its parameters (`read_shape`), are
read together (`read_together`): one statement per queryset for up to
MAX_TOGETHER observers, as Hasura answers many subscriptions' variables with
one query. Nothing waits on purpose: while the loaders are idle each read runs
at once, alone; when they are busy, the reads that queue meanwhile go together
(as they do when many clients subscribe at once).

Each observer's channels are LISTENed before it asks for its read (see
`dddp.server.hub`), so before the query that reads it starts, together or not.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from gevent import GreenletExit
from gevent.event import AsyncResult

from dddp.server.observer import Observer, Rows, read_together
from dddp.server.retries import retrying_first_read
from dddp.server.workers import WorkerPool

logger = logging.getLogger("dddp.server")

#: Observers read by one statement at most: each is a branch of its UNION ALL.
MAX_TOGETHER = 32

#: Observers whose reads wait, with the result each is to get.
Waiting = list[tuple[Observer, "AsyncResult[list[Rows]]"]]


def read_shape(observer: Observer) -> Hashable | None:
    """What observers read together share: each queryset's SQL but for its parameters,
    and a read plan for it (`dddp.server.compiled`). None for an observer read alone:
    its SQL is unknown, empty (`.none()`), or not one that reads the published fields
    as it stands (slices, `values()`, annotations, `select_related()`...)."""
    plans = []
    for query in observer.queries:
        if query.compiled is None or query.compiled.plan is None:
            return None
        plans.append(query.compiled.plan)
    return tuple(plans)  # (one plan per database, model and SQL text: by identity)


class FirstReads:
    """Runs first reads on `loaders` greenlets (a database connection each), together
    where they can be."""

    def __init__(self, loaders: int):
        self._pool = WorkerPool(loaders)
        self._waiting: dict[Hashable, Waiting] = {}  # by shape: the reads a new one may join
        self._queued: dict[int, Waiting] = {}  # every group whose read has not started

    def read(self, observer: Observer, shape: Hashable | None) -> list[Rows]:
        """The observer's first read (as `Observer.read`); raises what reading it raised."""
        if shape is None:
            return self._pool.run(retrying_first_read, observer.read)  # type: ignore[no-any-return]
        result: AsyncResult[list[Rows]] = AsyncResult()
        waiting = self._waiting.get(shape)
        if waiting is None or len(waiting) >= MAX_TOGETHER:
            waiting = self._waiting[shape] = []
            self._queued[id(waiting)] = waiting
            self._pool.submit(self._read_waiting, shape, waiting)
        waiting.append((observer, result))
        return result.get()

    def _read_waiting(self, shape: Hashable, waiting: Waiting) -> None:
        """Read every observer waiting in `waiting`; those that come later wait for the next."""
        if self._waiting.get(shape) is waiting:
            del self._waiting[shape]
        del self._queued[id(waiting)]
        try:
            observers = [observer for observer, _result in waiting]
            try:
                results = retrying_first_read(read_together, observers)
            except Exception:
                if len(waiting) == 1:
                    raise
                # One observer's query may be what failed (a statement timeout, a value
                # PostgreSQL refuses): each is read alone, to get its own outcome.
                logger.debug("reading %d observers together failed; reading each alone", len(waiting))
                for observer, result in waiting:
                    try:
                        result.set(retrying_first_read(observer.read))
                    except Exception as exc:  # noqa: BLE001 - handed to its subscriber
                        result.set_exception(exc)
                return
            for (_observer, result), rows in zip(waiting, results, strict=True):
                result.set(rows)
        except BaseException as exc:  # (GreenletExit from `stop`): no subscriber waits forever
            for _observer, result in waiting:
                if not result.ready():
                    result.set_exception(exc)
            raise

    def stop(self, timeout: float) -> None:
        """Stop the loaders: reads running or waiting are abandoned (GreenletExit)."""
        self._pool.stop(timeout)
        for waiting in self._queued.values():  # (dropped by the pool before they started)
            for _observer, result in waiting:
                if not result.ready():
                    result.set_exception(GreenletExit())
        self._waiting.clear()
        self._queued.clear()
