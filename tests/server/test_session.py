"""The DDP session in process, wired back to back with a fake transport: texts in, texts out.

No socket and no server process: the session under test is the real
`dddp.server.session.Session`; the transport is `FakeTransport`, which records
what the session writes, can be made to hold writes (a slow client), and plays
the client's side (`client_sends`). Requests that need Django (methods that
run, subscriptions that read) are covered over real sockets elsewhere; here
the session's own behaviour: ordering, holding, limits and closing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import gevent
import gevent.event
import gevent.lock
import pytest
from gevent.event import Event

from dddp.api import Registry
from dddp.protocol import messages
from dddp.rate_limits import RateLimiter
from dddp.server.lane import LARGE_MESSAGE, lane
from dddp.server.session import MERGE_SLICE, OUTPUT_PAUSE_BYTES, Session, deliveries_held
from dddp.server.snapshot import CHUNK_BYTES, Snapshot
from dddp.server.transport import TransportClosed, TransportUser


class FakeTransport:
    """A transport whose client is the test: every write is kept, in order, as parsed messages."""

    kind = "fake"
    client_address = "test:1"

    def __init__(self) -> None:
        self.user: TransportUser | None = None
        self.writes: list[list[str]] = []  # each write call's texts
        self.closed_with: tuple[int, str] | None = None
        self.aborted = False
        self.slow = False  # a slow client: writes stay pending until `catch_up`
        self.reading = True  # False while the session has paused reading (backpressure)
        self.pauses = 0
        self._pending = 0
        self._caught_up = Event()

    # --- the Transport interface -------------------------------------------------

    def start(self, user: TransportUser, pending: bytes = b"") -> None:
        self.user = user

    def write(self, texts: Sequence[str]) -> int:
        if self.aborted or self.closed_with is not None:
            raise TransportClosed("transport closed")
        self.writes.append(list(texts))
        if self.slow:
            self._pending += sum(len(text) for text in texts)
        return self._pending

    @property
    def pending_bytes(self) -> int:
        return self._pending

    def drained(self) -> None:
        while self._pending:
            self._caught_up.wait()
            self._caught_up.clear()

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def abort(self) -> None:
        self.aborted = True

    # --- the client's side -------------------------------------------------------

    def client_sends(self, message: dict[str, Any]) -> None:
        assert self.user is not None
        self.user.receive(json.dumps(message))

    def catch_up(self) -> None:
        """The slow client reads everything pending."""
        self._pending = 0
        self._caught_up.set()
        if self.user is not None:
            self.user.output_drained()
        gevent.sleep(0)

    def received(self) -> list[dict[str, Any]]:
        """Every message written since the last call, parsed, in order."""
        texts = [text for write in self.writes for text in write]
        self.writes.clear()
        return [json.loads(text) for text in texts]


class FakeHub:
    def forget(self, session: Session, sub_id: str, key: Any) -> None:
        pass


class FakeServer:
    """What a session asks of its server, with no hub or workers behind it."""

    def __init__(self, max_send_queue_bytes: int = 1 << 20, max_pending_requests: int = 100):
        self.registry = Registry()
        self.heartbeat_interval = 0.0
        self.heartbeat_timeout = 15.0
        self.max_send_queue_bytes = max_send_queue_bytes
        self.max_subscriptions = 10
        self.max_pending_requests = max_pending_requests
        self.max_observers_per_connection = 100
        self.max_params_size = 64 * 1024
        self.fence_timeout = 1.0
        self.hub = FakeHub()
        self.rate_limits = RateLimiter()
        self.cpu_heavy_calls = gevent.lock.BoundedSemaphore(1)
        self.forgotten: list[Session] = []

    def forget(self, session: Session) -> None:
        self.forgotten.append(session)


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


def connected(transport: FakeTransport, server: FakeServer | None = None) -> Session:
    session = Session(server or FakeServer(), transport, {})  # type: ignore[arg-type]
    session.start()
    transport.client_sends({"msg": "connect", "version": "1", "support": ["1"]})
    assert transport.received()[0]["msg"] == "connected"
    return session


def deliver_added(session: Session, doc_id: str, title: str = "x") -> None:
    fields = {"title": title}
    text = messages.added("books", doc_id, fields)
    session.deliver("s1", "added", "books", doc_id, fields, (), text, after=fields)


# --- texts in, texts out --------------------------------------------------------------


def test_connect_and_ping_are_answered_at_once(transport: FakeTransport) -> None:
    connected(transport)
    transport.client_sends({"msg": "ping", "id": "p"})
    assert transport.received() == [{"msg": "pong", "id": "p"}]


def test_an_unreadable_message_gets_bad_request_and_the_session_goes_on(transport: FakeTransport) -> None:
    session = connected(transport)
    session.receive_unreadable()
    transport.client_sends({"msg": "ping"})
    assert transport.received() == [{"msg": "error", "reason": "Bad request"}, {"msg": "pong"}]


def test_an_unknown_method_gets_result_404_then_updated(transport: FakeTransport) -> None:
    connected(transport)
    transport.client_sends({"msg": "method", "method": "nope", "params": [], "id": "1"})
    gevent.sleep(0)  # the request processor's turn
    result, updated = transport.received()
    assert (result["msg"], result["id"], result["error"]["error"]) == ("result", "1", 404)
    assert updated == {"msg": "updated", "methods": ["1"]}


# --- backpressure ----------------------------------------------------------------------


def call_unknown(transport: FakeTransport, number: int) -> None:
    transport.client_sends({"msg": "method", "method": "nope", "params": [], "id": str(number)})


class GatedWorkers:
    """Method workers that finish one call each time the test opens the gate."""

    def __init__(self) -> None:
        self.gate = gevent.lock.Semaphore(0)

    def submit(self, func: Any, found: Any, name: str, *args: Any) -> gevent.event.AsyncResult:
        result = gevent.event.AsyncResult()

        def finish() -> None:
            self.gate.acquire()
            result.set((None, name, False))  # (error, value, wrote)

        gevent.spawn(finish)
        return result


class UnblockingWorkers(GatedWorkers):
    """Method workers whose methods call this.unblock() at once, then wait for the gate."""

    def submit(self, func: Any, found: Any, name: str, params: Any, invocation: Any, fence: str) -> Any:
        result = gevent.event.AsyncResult()

        def run() -> None:
            invocation.unblock()
            self.gate.acquire()
            result.set((None, name, False))

        gevent.spawn(run)
        return result


def test_a_session_running_an_unblocked_method_is_not_idle_until_it_answers(
    transport: FakeTransport,
) -> None:
    """A graceful shutdown waits for idle sessions: a method past this.unblock() still counts."""
    server = FakeServer()
    server.registry.method(name="unblocking")(lambda this: None)
    server.workers = UnblockingWorkers()  # type: ignore[attr-defined]
    server.hub.new_fence = lambda: "fence"  # type: ignore[attr-defined]
    server.hub.drop_fence = lambda fence: None  # type: ignore[attr-defined]
    session = connected(transport, server)
    transport.client_sends({"msg": "method", "method": "unblocking", "params": [], "id": "u"})
    gevent.sleep(0.01)
    assert transport.received() == [] and not session.idle
    server.workers.gate.release()  # type: ignore[attr-defined]
    gevent.sleep(0.01)
    assert transport.received() == [
        {"msg": "result", "id": "u", "result": "unblocking"},
        {"msg": "updated", "methods": ["u"]},
    ]
    assert session.idle


def test_unblocked_calls_count_toward_the_pending_limit(transport: FakeTransport) -> None:
    """A client pipelining methods that call this.unblock() cannot run more than the
    pending limit at once: past it, a call blocks the queue and reading pauses as usual."""
    server = FakeServer(max_pending_requests=3)
    server.registry.method(name="unblocking")(lambda this: None)
    server.workers = UnblockingWorkers()  # type: ignore[attr-defined]
    server.hub.new_fence = lambda: "fence"  # type: ignore[attr-defined]
    server.hub.drop_fence = lambda fence: None  # type: ignore[attr-defined]
    session = connected(transport, server)
    for number in range(7):
        transport.client_sends({"msg": "method", "method": "unblocking", "params": [], "id": str(number)})
        gevent.sleep(0.001)
    assert session._unblocked_calls == 3  # the fourth runs blocking, the last three wait
    assert not transport.reading
    for _ in range(7):
        server.workers.gate.release()  # type: ignore[attr-defined]
        gevent.sleep(0.001)
    gevent.sleep(0.01)
    assert sorted(m["id"] for m in transport.received() if m["msg"] == "result") == [str(n) for n in range(7)]
    assert transport.reading and session.idle


class CountingWorkers(GatedWorkers):
    """Gated workers that keep the names of the calls submitted to them."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str] = []

    def submit(self, func: Any, found: Any, name: str, *args: Any) -> gevent.event.AsyncResult:
        self.submitted.append(name)
        return super().submit(func, found, name, *args)


def test_cpu_heavy_calls_wait_outside_the_workers_one_per_hashing_thread() -> None:
    """Logins waiting for a password hash never take every worker: the second waits in its
    session until the first is done, while another method goes to a worker at once."""
    server = FakeServer()
    server.registry.method(name="heavy", cpu_heavy=True)(lambda this: None)
    server.registry.method(name="light")(lambda this: None)
    server.workers = CountingWorkers()  # type: ignore[attr-defined]
    server.hub.new_fence = lambda: "fence"  # type: ignore[attr-defined]
    server.hub.drop_fence = lambda fence: None  # type: ignore[attr-defined]
    first, second, third = FakeTransport(), FakeTransport(), FakeTransport()
    for transport in (first, second, third):
        connected(transport, server)
    first.client_sends({"msg": "method", "method": "heavy", "params": [], "id": "1"})
    second.client_sends({"msg": "method", "method": "heavy", "params": [], "id": "2"})
    third.client_sends({"msg": "method", "method": "light", "params": [], "id": "3"})
    gevent.sleep(0.01)
    assert server.workers.submitted == ["heavy", "light"]  # type: ignore[attr-defined]
    server.workers.gate.release()  # type: ignore[attr-defined]
    gevent.sleep(0.01)
    assert server.workers.submitted == ["heavy", "light", "heavy"]  # type: ignore[attr-defined]
    for _ in range(2):
        server.workers.gate.release()  # type: ignore[attr-defined]
    gevent.sleep(0.01)
    assert all(
        [m["msg"] for m in transport.received()] == ["result", "updated"]
        for transport in (first, second, third)
    )


def test_reading_pauses_at_the_pending_limit_and_resumes_when_half_are_answered(
    transport: FakeTransport,
) -> None:
    server = FakeServer(max_pending_requests=10)
    server.registry.method(name="gated")(lambda this: None)
    server.workers = GatedWorkers()  # type: ignore[attr-defined]
    server.hub.new_fence = lambda: "fence"  # type: ignore[attr-defined]
    server.hub.drop_fence = lambda fence: None  # type: ignore[attr-defined]
    connected(transport, server)
    for number in range(10):  # one runs, nine wait: under the limit
        transport.client_sends({"msg": "method", "method": "gated", "params": [], "id": str(number)})
        gevent.sleep(0)
    assert transport.reading
    transport.client_sends({"msg": "method", "method": "gated", "params": [], "id": "10"})
    assert not transport.reading and transport.pauses == 1  # ten waiting
    answered = []
    while transport.reading is False:
        server.workers.gate.release()  # type: ignore[attr-defined]
        gevent.sleep(0)
        answered += [m["id"] for m in transport.received() if m["msg"] == "result"]
    assert len(answered) == 6  # resumed with five waiting: half the limit
    for _ in range(5):
        server.workers.gate.release()  # type: ignore[attr-defined]
        gevent.sleep(0)
    gevent.sleep(0.05)  # the last answers on their way
    answered += [m["id"] for m in transport.received() if m["msg"] == "result"]
    assert answered == [str(number) for number in range(11)]  # every one, in order (D-84)
    assert transport.pauses == 1


def test_while_reading_is_paused_the_clients_silence_is_no_heartbeat_timeout(
    transport: FakeTransport,
) -> None:
    server = FakeServer(max_pending_requests=1)
    server.heartbeat_interval, server.heartbeat_timeout = 1.0, 1.0
    session = connected(transport, server)
    call_unknown(transport, 1)
    assert not transport.reading
    now = session.protocol._last_received or 0.0
    for later in (5.0, 10.0, 15.0):  # long past the interval and the timeout
        session.check_heartbeat(now + later)
    assert not transport.aborted
    assert [m["msg"] for m in transport.received()] == []  # not even a ping


# --- deliveries held for the hub's batch ----------------------------------------------


def test_deliveries_of_one_batch_go_out_in_one_write(transport: FakeTransport) -> None:
    session = connected(transport)
    with deliveries_held():
        deliver_added(session, "a")
        deliver_added(session, "b")
        assert transport.writes == []
    assert [[json.loads(text)["id"] for text in write] for write in transport.writes] == [["a", "b"]]


def test_a_reply_is_never_held_behind_a_batch_and_never_overtakes_it(transport: FakeTransport) -> None:
    """A pong (or a method's result) sent while the hub's batch waits goes out at once, after the data."""
    session = connected(transport)
    with deliveries_held():
        deliver_added(session, "a")
        transport.client_sends({"msg": "ping", "id": "now"})
        assert [m.get("id") for m in transport.received()] == ["a", "now"]  # not at the block's end
        deliver_added(session, "b")
    assert [m["id"] for m in transport.received()] == ["b"]


def test_held_deliveries_count_against_the_slow_client_limit(
    transport: FakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    session = connected(transport, FakeServer(max_send_queue_bytes=500))
    with deliveries_held():
        for number in range(10):
            deliver_added(session, str(number), title="t" * 60)
    assert transport.aborted
    assert "dropped: too slow: over 500 bytes waiting to be sent" in caplog.text
    assert transport.received() == []


# --- a slow client ----------------------------------------------------------------------


def test_a_client_that_does_not_keep_up_is_dropped(transport: FakeTransport) -> None:
    server = FakeServer(max_send_queue_bytes=1000)
    session = connected(transport, server)
    transport.slow = True
    for number in range(20):
        deliver_added(session, str(number), title="t" * 60)
    assert transport.aborted
    assert server.forgotten == [session]
    assert session.close_reason == "too slow: over 1000 bytes waiting to be sent"


def send_big(transport: FakeTransport, message: dict[str, Any]) -> None:
    """The client sends a message over LARGE_MESSAGE, and the lane (dddp.server.lane) takes its turn."""
    transport.client_sends(message)
    while len(lane):
        gevent.sleep(0)


def test_a_client_that_does_not_take_its_replies_is_read_no_more_until_it_has(
    transport: FakeTransport,
) -> None:
    server = FakeServer(max_send_queue_bytes=16 << 20)
    server.heartbeat_interval, server.heartbeat_timeout = 1.0, 1.0
    session = connected(transport, server)
    transport.slow = True
    big_ping = {"msg": "ping", "id": "p" * (OUTPUT_PAUSE_BYTES // 4 - 100)}  # its pong: a quarter
    for _ in range(4):
        send_big(transport, big_ping)
        assert transport.reading  # up to OUTPUT_PAUSE_BYTES waiting
    send_big(transport, big_ping)
    assert not transport.reading
    transport.catch_up()
    assert transport.reading
    # One that never takes them is not kept alive by the pause: its heartbeat times out.
    for _ in range(5):
        send_big(transport, big_ping)
    assert not transport.reading
    now = session.protocol._last_received or 0.0
    session.check_heartbeat(now + 1.5)  # a ping, which it does not take either
    session.check_heartbeat(now + 3.0)
    assert transport.aborted and session.close_reason == "heartbeat timed out"


def documents(count: int, first: int = 0) -> Snapshot:
    return Snapshot({"books": {str(number): {"title": "t" * 100} for number in range(first, first + count)}})


def test_a_subscriptions_documents_are_encoded_as_the_client_takes_them(transport: FakeTransport) -> None:
    session = connected(transport)
    transport.slow = True
    session.deliver_initial("s1", documents(2000))
    session.send(messages.ready(["s1"]))
    gevent.sleep(0)
    first = [message["id"] for message in transport.received()]
    assert 0 < len(first) * 100 < 2 * CHUNK_BYTES  # one chunk, not all 2000
    while transport.pending_bytes:
        transport.catch_up()
    rest = transport.received()
    assert [m["id"] for m in rest[:-1]] == [str(n) for n in range(len(first), 2000)]
    assert rest[-1] == {"msg": "ready", "subs": ["s1"]}  # after every document (D-52)


def test_sessions_given_one_snapshot_send_the_very_same_texts() -> None:
    snapshot = documents(2000)
    transports = [FakeTransport(), FakeTransport()]
    for transport in transports:
        connected(transport).deliver_initial("s1", snapshot)
    gevent.sleep(0.01)
    first, second = ([text for write in t.writes for text in write] for t in transports)
    assert len(first) == 2000
    assert all(a is b for a, b in zip(first, second, strict=True))  # encoded once for both
    assert [json.loads(text)["id"] for text in first] == [str(n) for n in range(2000)]


def test_documents_the_client_holds_already_go_through_the_mergebox_one_by_one() -> None:
    transport = FakeTransport()
    session = connected(transport)
    session.deliver_initial("s1", documents(3))  # books 0, 1, 2
    session.deliver_initial("s2", Snapshot({"books": {"2": {"title": "t" * 100, "pages": 9}, "3": {}}}))
    gevent.sleep(0.01)
    assert transport.received()[3:] == [
        {"msg": "changed", "collection": "books", "id": "2", "fields": {"pages": 9}},  # D-71: new fields only
        {"msg": "added", "collection": "books", "id": "3"},
    ]
    session.withdraw("s1")
    assert [(m["msg"], m["id"]) for m in transport.received()] == [("removed", "0"), ("removed", "1")]
    assert session.mergebox.document("books", "2") == {"title": "t" * 100, "pages": 9}


def test_documents_merged_one_by_one_let_the_event_loop_turn_between_slices() -> None:
    """The documents' other path (some already held) is slow: the sockets are polled between slices."""
    transport = FakeTransport()
    session = connected(transport)
    session.deliver_initial("s1", documents(1))  # book 0: the next snapshot is not all new
    held_by_then: list[int] = []
    gevent.spawn_later(0, lambda: held_by_then.append(len(session.mergebox)))
    session.deliver_initial("s2", documents(3 * MERGE_SLICE))
    assert held_by_then and held_by_then[0] <= MERGE_SLICE + 1  # after the first slice, not the last
    assert len(session.mergebox) == 3 * MERGE_SLICE


def test_a_close_goes_after_the_documents_still_queued(transport: FakeTransport) -> None:
    session = connected(transport)
    transport.slow = True
    session.deliver_initial("s1", documents(2000))
    session.close(1001, "server shutting down")
    gevent.sleep(0)
    assert transport.closed_with is None
    while transport.pending_bytes:
        transport.catch_up()
    assert len(transport.received()) == 2000
    assert transport.closed_with == (1001, "server shutting down")


# --- closing ------------------------------------------------------------------------------


def test_when_the_client_closes_nothing_more_is_sent_or_handled(transport: FakeTransport) -> None:
    session = connected(transport)
    transport.slow = True
    session.deliver_initial("s1", documents(2000))
    gevent.sleep(0)
    transport.received()
    session.transport_closing("closed by the client")
    transport.client_sends({"msg": "ping"})
    session.send(messages.ready(["s1"]))
    while transport.pending_bytes:
        transport.catch_up()
    assert transport.received() == []  # what waited was dropped with the session's queue
    assert session.close_reason == "closed by the client"


def test_a_finished_session_lets_go_of_its_documents_and_input_at_once(transport: FakeTransport) -> None:
    """Not when the cyclic collector frees the session, which an idle server may not run for minutes."""
    session = connected(transport)
    session.deliver_initial("s1", documents(10))
    transport.slow = True
    transport.client_sends({"msg": "ping", "id": "p" * (LARGE_MESSAGE + 1)})  # waits in the lane
    session.transport_ended("the client went away without a close frame")
    assert len(session.mergebox) == 0 and session._waiting is None


def test_the_end_of_the_transport_forgets_the_session_once_and_logs_it(
    transport: FakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "dddp.server")
    server = FakeServer()
    session = connected(transport, server)
    session.transport_ended("the client went away without a close frame")
    session.transport_ended("again")
    assert server.forgotten == [session]
    assert transport.aborted
    closes = [r.getMessage() for r in caplog.records if " closed after " in r.getMessage()]
    assert len(closes) == 1
    assert closes[0].endswith(": the client went away without a close frame")


def test_a_failed_version_negotiation_closes_the_transport_after_failed(transport: FakeTransport) -> None:
    session = Session(FakeServer(), transport, {})  # type: ignore[arg-type]
    session.start()
    transport.client_sends({"msg": "connect", "version": "2", "support": ["2"]})
    assert transport.received() == [{"msg": "failed", "version": "1"}]
    assert transport.closed_with is not None and transport.closed_with[0] == 1000


def test_a_transport_gone_mid_write_ends_the_session(transport: FakeTransport) -> None:
    server = FakeServer()
    session = connected(transport, server)
    transport.aborted = True  # the socket broke
    session.send(messages.ready(["x"]))
    assert server.forgotten == [session]


class RunningWorkers:
    """Method workers that run each job at once, keeping what they were given."""

    def __init__(self) -> None:
        self.ran: list[Any] = []

    def run(self, func: Any, *args: Any) -> Any:
        self.ran.append(func)
        return func(*args)


def test_an_authenticator_runs_only_for_connections_that_sent_its_headers() -> None:
    """Most connections send no cookie: they cost the session-cookie authenticator no worker."""

    def from_cookie(headers: dict[str, str]) -> Any:
        return 7 if headers.get("cookie") == "sessionid=ok" else None

    from_cookie.headers = ("cookie",)  # type: ignore[attr-defined]
    server = FakeServer()
    server.registry.connection_authenticators.append(from_cookie)
    server.workers = RunningWorkers()  # type: ignore[attr-defined]
    without = Session(server, FakeTransport(), {})  # type: ignore[arg-type]
    with_cookie = Session(server, FakeTransport(), {"cookie": "sessionid=ok"})  # type: ignore[arg-type]
    for session in (without, with_cookie):
        session.start()
        session.transport.client_sends({"msg": "connect", "version": "1", "support": ["1"]})  # type: ignore[attr-defined]
    gevent.sleep(0.01)
    assert server.workers.ran == [from_cookie]  # type: ignore[attr-defined]
    assert (without.user_id, with_cookie.user_id) == (None, 7)
