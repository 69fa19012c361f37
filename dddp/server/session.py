"""A client's DDP session on the server: protocol state, requests in order, a send queue.

A session deals in message texts only: its transport (`dddp.server.transport`)
frames them for the wire, reads the client's, and closes the connection its
own way. Where each part runs, and why:
- texts arrive from the transport's read callback, in the event loop: the
  session answers what the protocol alone can answer (pings at once, D-20)
  and queues requests, never blocking;
- a processor greenlet, alive only while requests wait, runs them strictly in
  order (D-84), handing Django work to the server's WorkerPool;
- texts to send go to the transport at once (it never blocks); only a new
  subscription's documents, encoded as the client takes them, wait here for
  a writer greenlet, and what is sent meanwhile waits behind them. More than
  DDDP_MAX_SEND_QUEUE_BYTES waiting, here or in the transport, means the
  client is too slow: it is dropped, so no other part ever waits for a client.
An idle session therefore costs no greenlet.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
from gevent.event import AsyncResult

from dddp.log_throttle import LogThrottle, first_line, left_out, quote
from dddp.methods import ConnectionInfo, MethodInvocation, call_method
from dddp.protocol import messages
from dddp.protocol.connection import CloseTransport, DDPConnection, Event, SessionStarted, State
from dddp.protocol.errors import (
    MeteorError,
    database_unavailable,
    internal_server_error,
    method_not_found,
    subscription_not_found,
)
from dddp.protocol.mergebox import Mergebox
from dddp.protocol.messages import CallMethod, Subscribe, Unsubscribe
from dddp.protocol.websocket import CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION
from dddp.rate_limits import Request
from dddp.server.lane import LARGE_MESSAGE, lane
from dddp.server.loop import next_turn
from dddp.server.observer import observer_key
from dddp.server.snapshot import chunked
from dddp.server.transport import Transport, TransportClosed
from dddp.signals import changes_sent, reset_changes_sent, send_fence

if TYPE_CHECKING:
    from dddp.api import Publication
    from dddp.server.app import DDPServer
    from dddp.server.observer import ObserverKey
    from dddp.server.snapshot import Snapshot

logger = logging.getLogger("dddp.server")

_numbers = itertools.count(1)
_failures = LogThrottle()  # the same failure, again and again, is logged once per interval

#: Documents a new subscription merges one by one between turns of the event loop.
MERGE_SLICE = 1000
#: A new subscription of at most this many documents is written at once, in the hub's
#: turn, rather than by a writer greenlet of its own (most have a few).
WRITE_AT_ONCE = 100
#: Bytes waiting for the client (queued here or in the transport) past which the
#: session reads no more from it, until it has taken half of them.
OUTPUT_PAUSE_BYTES = 1 << 20


@dataclass
class Subscribed:
    """A subscription the session holds: what was asked for, and the run serving it.

    The hub and the mergebox know a run by its `handle`: the client's sub id for
    the first run, a fresh handle for each re-run after a login or logout (D-59),
    so that the new run's documents merge in before the old run's are withdrawn.
    """

    publication: type[Publication]
    params: list[Any]
    key: ObserverKey
    handle: Hashable


class Session:
    """One client connection, from the transport's open to its close."""

    def __init__(self, server: DDPServer, transport: Transport, http_headers: dict[str, str]):
        self.server = server
        self.transport = transport
        self.http_headers = http_headers
        self.number = next(_numbers)
        self.protocol = DDPConnection(
            heartbeat_interval=server.heartbeat_interval,
            heartbeat_timeout=server.heartbeat_timeout,
            max_params_size=server.max_params_size,
        )
        self.user_id: Any = None
        self.login_token: str | None = None  # the hash of the resume token it logged in with
        self._user_changed = False  # by a method: its subscriptions re-run before its result
        self.subscriptions: dict[str, Subscribed] = {}  # by the client's sub id
        self.universal: dict[str, Subscribed] = {}  # universal publications, by name
        self._runs = itertools.count(1)
        self.mergebox = Mergebox()
        self.closed = False  # closing or closed: no more input is handled, nothing more is queued
        self.close_reason = "closed by the client"
        self._started = 0.0
        self._requests: deque[Event | _SessionOpened] = deque()
        self._processor: gevent.Greenlet | None = None
        self._unblocked_calls = 0  # methods that called this.unblock() and are still running
        # Documents encoded as the client takes them, what was sent after them, the close.
        self._outbox: deque[str | Iterator[list[str]] | _Close] = deque()
        self._outbox_bytes = 0
        self._writer: gevent.Greenlet | None = None
        self._held: list[str] | None = None  # deliveries of the hub's batch, written when it ends
        self._held_bytes = 0
        self._max_waiting = server.max_send_queue_bytes
        self._max_pending = server.max_pending_requests
        self._requests_paused = False  # backpressure: too many requests unanswered
        self._output_paused = False  # backpressure: too much output the client has not taken
        self._large_paused = False  # a big message waits its turn in the lane
        self._waiting: list[str] | None = None  # that message, and what was read after it
        self._finished = False

    # --- the connection's life ------------------------------------------------------

    def start(self, pending: bytes = b"") -> None:
        """Begin reading; `pending` is input already read along with the HTTP upgrade."""
        self._started = time.monotonic()
        logger.info(
            "connection %d opened from %s (%s)",
            self.number,
            self.transport.client_address,
            self.transport.kind,
        )
        self.transport.start(self, pending)

    def receive_unreadable(self) -> None:
        """DDP is JSON text: anything else is a malformed message (table 1.4)."""
        self.send(messages.error("Bad request"))

    def transport_closing(self, reason: str) -> None:
        """The client closes (or broke its transport's protocol): handle and send nothing more."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.protocol.close()
        self._drop_output()

    def transport_ended(self, reason: str) -> None:
        """The connection is over, whichever side ended it."""
        if not self.closed:
            self.close_reason = reason
        self._finish()

    def _finish(self) -> None:
        """Forget the session, once: its subscriptions, its queue, and log the close."""
        if self._finished:
            return
        self._finished = True
        self.closed = True
        self.protocol.close()
        self.transport.abort()
        self._drop_output()
        # What it held goes now: a session is in reference cycles (with its transport,
        # its greenlets), freed only when the cyclic collector next runs, which an idle
        # server may not do for minutes (50 zombies' mergeboxes and input: 70 MiB).
        self.mergebox = Mergebox()
        self._waiting = None
        self._requests.clear()
        self.server.forget(self)
        held = [*self.subscriptions.values(), *self.universal.values()]
        if held:
            gevent.spawn(self._forget_subscriptions, held)
        logger.info(
            "connection %d closed after %.1fs (session %s): %s",
            self.number,
            time.monotonic() - self._started,
            self.protocol.session_id,
            self.close_reason,
        )

    def _drop_output(self) -> None:
        self._outbox.clear()
        self._outbox_bytes = 0
        self._held = None
        self._held_bytes = 0

    def receive(self, message: str) -> None:
        if self.closed:
            return
        if self._waiting is not None:  # behind a big message: in order
            self._waiting.append(message)
            return
        if len(message) > LARGE_MESSAGE:
            self._waiting = [message]
            self._pause_reading(large=True)
            lane.put(self)
            return
        self._receive_now(message)

    def receive_waiting(self) -> None:
        """The lane's turn (`dddp.server.lane`): the big message, and what came after it."""
        texts, self._waiting = self._waiting or [], None
        for number, text in enumerate(texts):
            if self.closed:
                return
            if number and len(text) > LARGE_MESSAGE:
                self._waiting = texts[number:]
                lane.put(self)
                return
            self._receive_now(text)
        self._resume_reading(large=True)

    def _receive_now(self, message: str) -> None:
        events = self.protocol.receive(message, time.monotonic())
        self.flush_protocol()
        for event in events:
            self._handle(event)

    def flush_protocol(self) -> None:
        """Send the protocol's own replies (pong, error, connected...) now, in order."""
        for text in self.protocol.take_outgoing():
            self.send(text)

    def _handle(self, event: Event) -> None:
        if isinstance(event, SessionStarted):
            logger.debug("connection %d: session %s, DDP %s", self.number, event.session_id, event.version)
            registry = self.server.registry
            if registry.universal_publications or registry.connection_authenticators:
                self._queue_request(_SessionOpened())
        elif isinstance(event, CloseTransport):
            self.close(CLOSE_NORMAL, event.reason)
        else:
            self._queue_request(event)

    def _queue_request(self, event: Event | _SessionOpened) -> None:
        self._requests.append(event)
        if len(self._requests) >= self._max_pending and not self._requests_paused:
            # Read no more until the backlog is half done: a client pipelining
            # requests waits in its socket (or its HTTP send), not in our memory.
            self._pause_reading(requests=True)
        if self._processor is None:
            self._processor = gevent.spawn(self._process_requests)

    # --- requests, in order (D-84) ----------------------------------------------

    def _process_requests(self) -> None:
        try:
            while self._requests and not self.closed:
                request = self._requests.popleft()
                try:
                    if isinstance(request, CallMethod):
                        self._call_method(request)
                    elif isinstance(request, Subscribe):
                        self._subscribe(request)
                    elif isinstance(request, Unsubscribe):
                        self._unsubscribe(request)
                    elif isinstance(request, _SessionOpened):
                        self._authenticate()
                        self._start_universal()
                except Exception as exc:  # a bug of ours must not end the session
                    count = _failures.allow(("request", self.number, type(request), type(exc)))
                    if count is not None:
                        logger.exception(
                            "connection %d: failed to handle %s%s",
                            self.number,
                            quote(request),
                            left_out(count),
                        )
                if self._requests_paused and len(self._requests) <= self._max_pending // 2:
                    self._resume_reading(requests=True)
        finally:
            self._processor = None
            if self._requests_paused:
                self._resume_reading(requests=True)

    @property
    def _reading(self) -> bool:
        return not (self._requests_paused or self._output_paused or self._large_paused)

    def _pause_reading(self, *, requests: bool = False, output: bool = False, large: bool = False) -> None:
        was_reading = self._reading
        self._requests_paused |= requests
        self._output_paused |= output
        self._large_paused |= large
        if was_reading and not self._finished:
            self.transport.pause_reading()

    def _resume_reading(self, *, requests: bool = False, output: bool = False, large: bool = False) -> None:
        was_paused = not self._reading
        if requests:
            self._requests_paused = False
        if output:
            self._output_paused = False
        if large:
            self._large_paused = False
        if was_paused and self._reading and not self._finished:
            self.transport.resume_reading()

    def _call_method(self, call: CallMethod) -> None:
        """Exactly one `result` and one `updated` per method id, whatever happens (D-81).

        The next request waits until the method returns (D-84), unless the method
        calls `this.unblock()`: then its reply is sent from a greenlet of its own
        when it returns, and the next request is handled meanwhile.
        """
        found = self.server.registry.methods.get(call.name)
        refusal = method_not_found(call.name) if found is None else self._rate_limited("method", call.name)
        if refusal is not None or found is None:
            self.send(self._encode_error(call, refusal or method_not_found(call.name)))
            self.send(messages.updated([call.id]))
            return
        unblocked = gevent.event.Event()
        invocation = MethodInvocation(
            call.name,
            connection=self.connection_info(),
            user_id=self.user_id,
            random_seed=call.random_seed,
            set_user_id=self._set_user_id,
            unblock=unblocked.set,
            login_token=self.login_token,
            set_login_token=self._set_login_token,
        )
        fence = self.server.hub.new_fence()
        heavy = found.is_cpu_heavy(call.params)
        if heavy:
            # Waiting here, not in a worker: calls that mostly wait for a hashing thread
            # must never hold every worker (and its database connection) meanwhile.
            self.server.cpu_heavy_calls.acquire()
        job = self.server.workers.submit(_call_with_fence, found, call.name, call.params, invocation, fence)
        if heavy:
            job.rawlink(lambda _: self.server.cpu_heavy_calls.release())
        if self._unblocked_calls < self._max_pending:
            gevent.wait([job, unblocked], count=1)
        else:  # as many unblocked calls run as requests may wait: this one blocks, so reading pauses
            gevent.wait([job])
        if job.ready():
            self._reply(call, fence, job)
            return
        self._unblocked_calls += 1
        gevent.spawn(self._reply_when_done, call, fence, job)

    def _reply_when_done(self, call: CallMethod, fence: str, job: AsyncResult[Any]) -> None:
        """The reply of a method that called `this.unblock()`, once it returns."""
        try:
            self._reply(call, fence, job)
        finally:
            self._unblocked_calls -= 1

    def _reply(self, call: CallMethod, fence: str, job: AsyncResult[Any]) -> None:
        wrote = False
        try:
            error, value, wrote = job.get()  # GreenletExit if the pool abandoned it (shutdown)
            if error is not None:
                raise error
            reply = messages.result(call.id, value)
        except MeteorError as err:
            reply = self._encode_error(call, err)
        except Exception as exc:
            count = _failures.allow(("method", call.name, type(exc)))
            if count is not None:
                logger.exception(
                    "connection %d: method %s failed%s", self.number, quote(call.name), left_out(count)
                )
            reply = messages.result_error(call.id, internal_server_error())
        if self._user_changed:  # logged in or out: the client's view changes before the result
            self._user_changed = False
            self._rerun_subscriptions()
        self.send(reply)
        self._await_fence(fence, wrote)
        self.send(messages.updated([call.id]))

    def _await_fence(self, fence: str, wrote: bool) -> None:
        """`updated` waits until the method's own data messages are sent (D-82)."""
        if not wrote:
            self.server.hub.drop_fence(fence)
        elif not self.server.hub.wait_fence(fence, self.server.fence_timeout):
            logger.warning(
                "connection %d: write fence %s timed out; sending updated anyway", self.number, fence
            )

    def _encode_error(self, call: CallMethod, err: MeteorError) -> str:
        try:
            return messages.result_error(call.id, err)
        except (TypeError, ValueError):
            logger.exception("method %r raised a MeteorError whose details are not JSON", call.name)
            return messages.result_error(call.id, internal_server_error())

    def _subscribe(self, sub: Subscribe) -> None:
        publication = self.server.registry.publications.get(sub.name)
        if publication is None:
            self.send(messages.nosub(sub.id, subscription_not_found(sub.name)))  # D-50
            return
        if sub.id in self.subscriptions:
            return  # D-51: a repeated sub id is ignored
        refusal = self._rate_limited("subscription", sub.name)
        if refusal is not None:
            self.send(messages.nosub(sub.id, refusal))
            return
        if len(self.subscriptions) >= self.server.max_subscriptions:
            limit = self.server.max_subscriptions
            reason = f"Too many subscriptions: at most {limit} per connection"
            self.send(messages.nosub(sub.id, MeteorError(429, reason)))
            return
        try:
            publication.check_params(sub.params)
            self._check_distinct_queries(publication, sub.params)
        except MeteorError as err:
            self.send(messages.nosub(sub.id, err))
            return
        except Exception as exc:  # noqa: BLE001 - a mistake in the publication's class: logged, and a 500
            self.send(messages.nosub(sub.id, self._publication_failed(sub.name, sub.params, exc)))
            return
        outcome = self._start_run(sub.id, publication, sub.params)
        if isinstance(outcome, MeteorError):
            self.send(messages.nosub(sub.id, outcome))
            return
        self.subscriptions[sub.id] = Subscribed(publication, sub.params, outcome, sub.id)
        self.send(messages.ready([sub.id]))  # after the initial documents (D-52)

    def _authenticate(self) -> None:
        """A connection already logged in elsewhere (a Django session's cookie, when its page's
        origin is trusted) starts as that user, before its first subscription."""
        for authenticate in self.server.registry.connection_authenticators:
            wanted = getattr(authenticate, "headers", None)
            if wanted is not None and not any(self.http_headers.get(name) for name in wanted):
                continue  # nothing for it to read: no worker needed (most connections)
            try:
                user_id = self.server.workers.run(authenticate, self.http_headers)
            except Exception:
                count = _failures.allow(("authenticate", type(authenticate)))
                if count is not None:
                    logger.exception(
                        "connection %d: could not authenticate it%s", self.number, left_out(count)
                    )
                continue
            if user_id is not None:
                self.user_id = user_id
                return

    def _start_universal(self) -> None:
        """Universal publications (Meteor's `publish(null)`): every session has them, with
        no sub, ready or nosub on the wire (A-20). A failing one is logged and left out."""
        for publication in self.server.registry.universal_publications:
            name = publication.publication_name()
            handle = ("universal", name, next(self._runs))
            outcome = self._start_run(handle, publication, [])
            if not isinstance(outcome, MeteorError):
                self.universal[name] = Subscribed(publication, [], outcome, handle)

    def _rerun_subscriptions(self) -> None:
        """After a login or logout, every subscription runs again for the new user (D-59).

        The new run's documents are merged in before the old run's are withdrawn, so
        the client gets exactly the difference: `added` for what it may now see,
        `changed` for what differs, `removed` for what it may no longer see, and
        nothing for the documents it keeps. A subscription whose query does not
        depend on the user (the same observer) is left as it is.
        """
        for table, is_universal in ((self.universal, True), (self.subscriptions, False)):
            for name, held in list(table.items()):
                if self.closed:
                    return
                try:
                    same = self.server.hub.key_for(held.publication, held.params, self.user_id) == held.key
                except Exception:  # noqa: BLE001 - its run below fails the same way, and says why
                    same = False
                if same:
                    continue  # the same rows for the new user: the same observer
                handle = (name, next(self._runs))
                outcome = self._start_run(handle, held.publication, held.params)
                if table.get(name) is not held:
                    # Unsubscribed meanwhile (by a later request of an unblocked method).
                    if not isinstance(outcome, MeteorError):
                        self.server.hub.unsubscribe(self, handle, outcome)
                    continue
                self.server.hub.unsubscribe(self, held.handle, held.key)  # the old run's documents out
                if isinstance(outcome, MeteorError):
                    del table[name]
                    if not is_universal:
                        self.send(messages.nosub(name, outcome))  # D-54
                    continue
                held.key, held.handle = outcome, handle

    def _rate_limited(self, kind: str, name: str) -> MeteorError | None:
        """Meteor's too-many-requests when a DDDP_RATE_LIMITS rule is over its count."""
        request = Request(
            kind, name, self.user_id, self.protocol.session_id or "", self.transport.client_address
        )
        return self.server.rate_limits.check(request)

    def _start_run(self, handle: Hashable, publication: Any, params: list[Any]) -> ObserverKey | MeteorError:
        """Attach a run of the publication to its observer (the documents go out as it attaches).

        On failure, whatever the run sent is withdrawn, the log says why, and the
        error for the client's nosub is returned.
        """
        try:
            key = self.server.hub.subscribe(self, handle, publication, params, self.user_id)
        except MeteorError as err:
            self.withdraw(handle)
            return err
        except Exception as exc:  # noqa: BLE001 - the publication's failure: logged, and a nosub
            self.withdraw(handle)
            return self._publication_failed(publication.publication_name(), params, exc)
        if self._finished:  # closed while it ran: nobody will forget it otherwise
            self.server.hub.forget(self, handle, key)
        return key

    def _publication_failed(self, name: str, params: list[Any], exc: Exception) -> MeteorError:
        from django.core.exceptions import FieldDoesNotExist, FieldError, ImproperlyConfigured
        from django.db import InterfaceError, OperationalError

        if isinstance(exc, (OperationalError, InterfaceError)):  # the database is unreachable
            count = _failures.allow("database unavailable")
            if count is not None:
                logger.error(
                    "publication %s: database unavailable: %s%s",
                    quote(name),
                    first_line(exc),
                    left_out(count),
                )
            return database_unavailable()

        # One line: which publication, for which params (client input: a bounded
        # prefix), and what is wrong. A mistake that dddp (PublicationError) or
        # Django diagnosed says it all; anything else gets its traceback too.
        # The same failure again and again on a connection is one line per interval, with a count.
        count = _failures.allow(("publication", self.number, name, type(exc)))
        if count is not None:
            shown, reason = repr(params), str(exc)
            line = "connection %d: publication %r failed for params %s: %s: %s%s"
            args = (
                self.number,
                name,
                shown if len(shown) <= 200 else shown[:197] + "...",
                type(exc).__name__,
                reason if len(reason) <= 500 else reason[:497] + "...",
                left_out(count),
            )
            if isinstance(exc, (ImproperlyConfigured, FieldError, FieldDoesNotExist)):
                logger.error(line, *args)
            else:
                logger.exception(line, *args)
        return internal_server_error()  # D-54

    def _check_distinct_queries(self, publication: Any, params: list[Any]) -> None:
        """A connection may hold many subscriptions, but only so many distinct queries:
        each is an observer, whose work on every change the whole process shares."""
        limit = self.server.max_observers_per_connection
        held = {subscribed.key for subscribed in self.subscriptions.values()}
        if len(held) < limit:
            return
        asked = observer_key(publication, params, self.user_id)[:2]
        if all(key[:2] != asked for key in held):
            count = _failures.allow(("distinct queries", self.number))
            if count is not None:
                logger.warning(
                    "connection %d: refused a subscription to %s: it holds %d distinct queries "
                    "(DDDP_MAX_OBSERVERS_PER_CONNECTION)%s",
                    self.number,
                    quote(publication.publication_name()),
                    limit,
                    left_out(count),
                )
            raise MeteorError(
                429, f"Too many distinct subscriptions: at most {limit} publication and parameter pairs"
            )

    def _unsubscribe(self, unsub: Unsubscribe) -> None:
        held = self.subscriptions.pop(unsub.id, None) if isinstance(unsub.id, str) else None
        if held is not None:
            self.server.hub.unsubscribe(self, held.handle, held.key)  # documents out first (D-53)
        self.send(messages.nosub(unsub.id))  # D-32

    # --- data from observers (called in the hub's greenlet) ------------------------

    def deliver(
        self,
        sub_id: Hashable,
        kind: str,
        collection: str,
        doc_id: str,
        fields: dict[str, Any],
        cleared: tuple[str, ...],
        text: str | None,
        after: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
    ) -> None:
        """A subscription's document message, through this client's mergebox (D-70).

        `after` is the observer's whole new document: the mergebox keeps a
        reference to it, shared by every session, instead of a copy of its own.
        """
        if self.closed:
            return
        if kind == "added":
            out = self.mergebox.added(sub_id, collection, doc_id, fields)
        elif kind == "changed":
            out = self.mergebox.changed(
                sub_id, collection, doc_id, fields, cleared, after=after, before=before
            )
        else:
            out = self.mergebox.removed(sub_id, collection, doc_id)
        if out is not None:
            # The observer encoded the message once for all; most sessions send it as is.
            self._deliver_text(text if out.passthrough and text is not None else out.to_message())

    def deliver_initial(self, sub_id: Hashable, snapshot: Snapshot) -> None:
        """A new subscription's current documents (D-52), merged now, sent as the client takes them.

        The mergebox records them at once (so later changes find them). A
        collection none of whose documents the client holds yet (the common
        case) is recorded in one step and sent as the snapshot's own texts,
        encoded once for every session. Otherwise each document goes through
        the mergebox, and its texts are made chunk by chunk as the client takes
        them, letting other greenlets run every MERGE_SLICE documents. A few
        documents (WRITE_AT_ONCE) are written at once.
        """
        queued: list[Iterator[list[str]]] = []
        for collection, docs in snapshot.documents.items():
            if self.mergebox.added_all_new(sub_id, collection, docs):
                queued.append(snapshot.texts(collection))
                continue
            outgoing = []
            for number, (doc_id, fields) in enumerate(docs.items(), 1):
                out = self.mergebox.added(sub_id, collection, doc_id, fields)
                if out is not None:
                    outgoing.append(out)
                if number % MERGE_SLICE == 0:
                    next_turn()
            if outgoing:
                queued.append(chunked(out.to_message() for out in outgoing))
        if queued and not self.closed:
            self.release_held()  # what came before goes first
            if not self._outbox and sum(map(len, snapshot.documents.values())) <= WRITE_AT_ONCE:
                for texts in queued:
                    for batch in texts:
                        self._write(batch)
                return
            self._outbox.extend(queued)
            self._start_writer()

    def withdraw(self, handle: Hashable) -> None:
        """Take a subscription run's documents out of the client's view (D-53, D-74)."""
        for out in self.mergebox.remove_subscription(handle):
            self.send(out.to_message())

    def subscription_failed(self, handle: Hashable, error: MeteorError) -> None:
        """The publication failed after `ready` (D-54): its documents are already withdrawn."""
        for table in (self.subscriptions, self.universal):
            for name, held in list(table.items()):
                if held.handle == handle:
                    del table[name]
                    if table is self.subscriptions:
                        self.send(messages.nosub(name, error))
                    return

    def _forget_subscriptions(self, held: list[Subscribed]) -> None:
        for subscribed in held:
            self.server.hub.forget(self, subscribed.handle, subscribed.key)

    @property
    def idle(self) -> bool:
        """No request waits or runs (what a graceful shutdown waits for)."""
        return self._processor is None and not self._requests and not self._unblocked_calls

    def _set_user_id(self, user_id: Any) -> None:
        if user_id != self.user_id:
            self.user_id = user_id
            self._user_changed = True

    def _set_login_token(self, hashed_token: str | None) -> None:
        self.login_token = hashed_token

    def connection_info(self) -> ConnectionInfo:
        return ConnectionInfo(
            id=self.protocol.session_id or "",
            client_address=self.transport.client_address,
            http_headers=self.http_headers,
        )

    # --- writing -----------------------------------------------------------------

    def send(self, text: str) -> None:
        """Send one message text; never blocks. A client too far behind is dropped.

        Deliveries held for the hub's batch go first, so that a reply (a
        `pong`, a method's `updated`) is never held, nor overtakes the data
        sent before it.
        """
        if self.closed:
            return
        if self._held is not None:
            self.release_held()
        self._write([text])

    def _deliver_text(self, text: str) -> None:
        """An observer's message: held while the hub dispatches a batch, to go in one write."""
        if self.closed:
            return
        if _holding is not None and not self._outbox:
            held = self._held
            if held is None:
                self._held = held = []
                _holding.append(self)
            held.append(text)
            self._held_bytes += len(text)
            if self._held_bytes > self._max_waiting:
                self._check_backlog()
            return
        self.send(text)

    def release_held(self) -> None:
        """Write the deliveries held during the hub's batch, together."""
        held, self._held = self._held, None
        self._held_bytes = 0
        if held and not self.closed:
            self._write(held)

    def _write(self, texts: list[str]) -> None:
        if self._outbox:  # a subscription's documents are still going out: after them
            self._outbox.extend(texts)
            self._outbox_bytes += sum(len(text) for text in texts)
            self._check_backlog()
            return
        try:
            pending = self.transport.write(texts)
        except TransportClosed as exc:
            self.transport_ended(str(exc))
            return
        if pending:  # the client is behind (the common case has nothing pending: no check)
            self._check_backlog()

    def _check_backlog(self) -> None:
        waiting = self._waiting_bytes()
        if waiting > self._max_waiting:
            self.abort(f"too slow: over {self._max_waiting} bytes waiting to be sent")
        elif waiting > OUTPUT_PAUSE_BYTES and not self._output_paused:
            # A client that does not take its replies is read no more until it has: else
            # it could make the server answer (a big ping, say) at the speed it sends,
            # queueing up to DDDP_MAX_SEND_QUEUE_BYTES each, and never read them.
            self._pause_reading(output=True)

    def _waiting_bytes(self) -> int:
        return self._outbox_bytes + self._held_bytes + self.transport.pending_bytes

    def output_drained(self) -> None:
        """The transport's client took everything written to it (called by the transport)."""
        if self._output_paused and self._waiting_bytes() <= OUTPUT_PAUSE_BYTES // 2:
            self._resume_reading(output=True)

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = gevent.spawn(self._write_outbox)

    def _write_outbox(self) -> None:
        """The writer greenlet: documents encoded a chunk at a time, as the client takes them."""
        try:
            while self._outbox and not self._finished:
                item = self._outbox[0]
                if isinstance(item, _Close):
                    self._outbox.clear()
                    self.transport.close(item.code, item.reason)
                    return
                batch: list[str] = []
                if isinstance(item, str):
                    while self._outbox and isinstance(self._outbox[0], str):
                        text = self._outbox.popleft()
                        assert isinstance(text, str)
                        self._outbox_bytes -= len(text)
                        batch.append(text)
                else:
                    batch = next(item, batch)
                    if not batch:
                        self._outbox.popleft()  # all sent
                if batch:
                    self.transport.write(batch)
                    self.transport.drained()
                    self.output_drained()
        except TransportClosed as exc:
            self.transport_ended(str(exc))
        finally:
            self._writer = None

    def close(self, code: int, reason: str) -> None:
        """Close after everything queued is sent, the transport's way, with `code` and `reason`."""
        if self.closed:
            return
        self.release_held()
        self.closed = True
        self.close_reason = reason
        self.protocol.close()
        if self._outbox:
            self._outbox.append(_Close(code, reason))
            self._start_writer()
        else:
            self.transport.close(code, reason)

    def abort(self, reason: str) -> None:
        """Drop the client at once: nothing more is sent, the connection is shut."""
        if self._finished:
            return
        if not self.closed:
            logger.warning("connection %d dropped: %s", self.number, reason)
            self.close_reason = reason
        self._finish()

    def check_heartbeat(self, now: float) -> None:
        """Called by the server's ticker: ping an idle client, drop a silent one (D-22)."""
        if (self._requests_paused or self._large_paused) and not self._output_paused:
            # We are not reading it: its silence is ours. (Not while it does not take its
            # output either: a client that reads nothing is dropped by the heartbeat.)
            self.protocol.client_alive(now)
        events = self.protocol.check_heartbeat(now)
        self.flush_protocol()
        if any(isinstance(event, CloseTransport) for event in events):
            self.abort("heartbeat timed out")

    def check_connect(self, now: float, timeout: float) -> None:
        """Called by the server's ticker: close a session whose client has not sent `connect`
        within `timeout` seconds of its opening (an open socket that never speaks DDP)."""
        if self.closed or self.protocol.state is not State.AWAITING_CONNECT:
            return
        if now - self._started >= timeout:
            reason = f"no connect message within {timeout:g}s (DDDP_CONNECT_TIMEOUT)"
            self.close(CLOSE_POLICY_VIOLATION, reason)

    def shut_down(self) -> None:
        """Graceful server shutdown: a 1001 close frame after what is queued."""
        self.close(CLOSE_GOING_AWAY, "server shutting down")


class _Close:
    """The close in the send queue: it goes last, after what was queued before."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str):
        self.code = code
        self.reason = reason


# Sessions holding deliveries while the hub dispatches a batch (None: not holding).
_holding: list[Session] | None = None


@contextlib.contextmanager
def deliveries_held() -> Iterator[None]:
    """Within this block, each session's observer deliveries are written together at its end.

    A batch of notifications typically yields several messages per session;
    one write each instead of one per message saves most of the system calls
    (which dominate a busy server's time). Only deliveries are held: anything
    else a session sends meanwhile first releases what it holds.
    """
    global _holding
    if _holding is not None:  # already holding: the outer block releases
        yield
        return
    _holding = []
    try:
        yield
    finally:
        sessions, _holding = _holding, None
        for session in sessions:
            session.release_held()


def _call_with_fence(
    found: Any, name: str, params: list[Any], invocation: MethodInvocation, fence: str
) -> tuple[MeteorError | None, Any, bool]:
    """Run a method on a worker; if it sent Changes, NOTIFY the fence after its commit."""
    reset_changes_sent()
    try:
        return None, call_method(found, name, params, invocation), changes_sent() > 0
    except MeteorError as error:
        return error, None, changes_sent() > 0
    finally:
        if changes_sent():
            send_fence(fence)


class _SessionOpened:
    """A request of the session itself, in order before the client's: authenticate the
    connection from its headers, then start the universal publications."""
