"""Graceful stop on SIGTERM/SIGINT: methods get DDDP_SHUTDOWN_TIMEOUT, the whole stop 1 s more.

Times are measured from the signal to the process's exit, with a wide margin
for a loaded machine: the server promises timeout + 1 s (`STOP_OVERRUN`). The
last tests stop a WorkerPool in this process: running jobs killed, waiting ones dropped.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import gevent
import pytest
import websocket
from gevent import GreenletExit

from dddp.server.app import STOP_OVERRUN
from dddp.server.workers import WorkerPool
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess

# What a loaded test machine may add to the server's own promise (timeout + STOP_OVERRUN).
MARGIN = 2.0


def stop_and_time(server: ServerProcess, sig: int = signal.SIGTERM) -> float:
    """Send `sig`; return the seconds until the process exited (failing after 30 s)."""
    started = time.monotonic()
    server.process.send_signal(sig)
    server.process.wait(30)
    return time.monotonic() - started


def texts_until_close(ddp: DDPClient, timeout: float = 10.0) -> tuple[list[dict[str, Any]], tuple[int, str]]:
    """The messages the server sends before its close frame, and the close's (code, reason)."""
    ddp.ws.settimeout(timeout)
    texts = []
    while True:
        opcode, frame = ddp.ws.recv_data_frame(control_frame=True)  # answers the close frame
        if opcode == websocket.ABNF.OPCODE_TEXT:
            texts.append(json.loads(frame.data))
        elif opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            return texts, (int.from_bytes(data[:2], "big"), data[2:].decode("utf-8"))


def start_method(ddp: DDPClient, method: str, *params: Any, id: str) -> None:
    ddp.send({"msg": "method", "method": method, "params": list(params), "id": id})
    time.sleep(0.3)  # it is running


def test_sigterm_lets_a_running_method_finish_then_closes_with_1001(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server().wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        start_method(ddp, "sleep", 1.0, id="last")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert ddp.recv(timeout=5) == {"msg": "result", "id": "last", "result": 1.0}
        assert ddp.recv() == {"msg": "updated", "methods": ["last"]}
        assert ddp.recv_close() == (1001, "server shutting down")
        server.process.wait(30)
        # Not the whole DDDP_SHUTDOWN_TIMEOUT (10 s): the stop ends once the method has.
        assert time.monotonic() - started < 0.7 + STOP_OVERRUN + MARGIN
    assert server.stop() == 0
    server.wait_for_log(r"INFO dddp.server: stopped")
    assert "Traceback" not in server.text


def test_sigint_stops_the_server_too(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server().wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        server.process.send_signal(signal.SIGINT)
        assert ddp.recv_close() == (1001, "server shutting down")
    assert server.stop() == 0
    assert "Traceback" not in server.text


def test_a_method_longer_than_the_timeout_is_abandoned_and_the_stop_ends_on_time(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(DDDP_SHUTDOWN_TIMEOUT="1").wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        start_method(ddp, "sleep", 20.0, id="long")
        seconds = stop_and_time(server)
        texts, close = texts_until_close(ddp)
    assert 1.0 <= seconds < 1.0 + STOP_OVERRUN + MARGIN, f"stopped after {seconds:.2f}s"
    assert server.process.returncode == 0
    # No result: the client re-sends the method when it reconnects.
    assert texts == []
    assert close == (1001, "server shutting down")
    assert "abandoning 1 method call(s)" in server.text
    assert "Traceback" not in server.text


def test_a_client_that_never_answers_the_close_frame_does_not_hold_the_stop(start_server) -> None:  # type: ignore[no-untyped-def]
    """Once methods have run, and the client reads nothing more: well under the old 2 s."""
    server = start_server().wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        for number in range(5):
            assert ddp.call("add", number, 1, id=f"a{number}")["result"]["result"] == number + 1
            assert ddp.call("count_notes", "none", id=f"c{number}")["result"]["result"] == 0
        seconds = stop_and_time(server)
    # CLOSE_GRACE (0.5 s), where a fixed 2 s wait used to be.
    assert seconds < 1.5, f"stopped after {seconds:.2f}s"
    assert server.process.returncode == 0
    assert "Traceback" not in server.text


def test_a_second_signal_stops_at_once(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(DDDP_SHUTDOWN_TIMEOUT="20").wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        start_method(ddp, "sleep", 30.0, id="long")
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_log(r"shutting down: 1 connection")
        seconds = stop_and_time(server, signal.SIGINT)
        texts, close = texts_until_close(ddp)
    assert seconds < STOP_OVERRUN + MARGIN, f"stopped {seconds:.2f}s after the second signal"
    assert server.process.returncode == 0
    assert texts == []
    assert close == (1001, "server shutting down")
    assert "second signal: stopping now" in server.text


@pytest.mark.django_db(transaction=True)
def test_a_slow_first_read_does_not_hold_the_stop(start_server) -> None:  # type: ignore[no-untyped-def]
    """A publication's query still running in PostgreSQL is abandoned with its connection."""
    from tests.testapp.models import Tag

    Tag.objects.create(name="slow to read")  # with no row, PostgreSQL skips the sleep
    server = start_server(DDDP_SHUTDOWN_TIMEOUT="1").wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        ddp.send({"msg": "sub", "name": "SlowTags", "params": [20], "id": "slow"})
        time.sleep(0.5)  # its query is under way
        seconds = stop_and_time(server)
        texts, close = texts_until_close(ddp)
    assert seconds < 1.0 + STOP_OVERRUN + MARGIN, f"stopped after {seconds:.2f}s"
    assert server.process.returncode == 0
    assert texts == []  # no `ready`
    assert close == (1001, "server shutting down")
    assert "Traceback" not in server.text


# --- the worker pool's stop, in this process ------------------------------------------


def stubborn(seconds: float) -> None:
    """A job that outlives being killed once."""
    try:
        gevent.sleep(seconds)
    except GreenletExit:
        gevent.sleep(seconds)


def test_stopping_the_pool_kills_the_running_job_and_drops_the_waiting_ones() -> None:
    pool = WorkerPool(1)
    callers = [gevent.spawn(pool.run, gevent.sleep, 20) for _ in range(3)]
    gevent.sleep(0.05)
    started = time.monotonic()
    assert pool.stop(timeout=5) == 3
    assert time.monotonic() - started < 1.0
    gevent.joinall(callers, timeout=1)
    assert all(isinstance(caller.value, GreenletExit) for caller in callers)


def test_a_job_that_resists_being_killed_is_left_behind_after_the_timeout() -> None:
    pool = WorkerPool(2)
    caller = gevent.spawn(pool.run, stubborn, 20)
    gevent.sleep(0.05)
    started = time.monotonic()
    assert pool.stop(timeout=0.2) == 1
    assert 0.2 <= time.monotonic() - started < 1.0
    caller.kill()


def test_stopping_an_idle_pool_waits_for_nothing() -> None:
    pool = WorkerPool(4)
    assert pool.run(sum, [1, 2]) == 3
    started = time.monotonic()
    assert pool.stop(timeout=5) == 0
    assert time.monotonic() - started < 0.5
