"""The heap trimmer gives back to the system what a burst of connections freed in glibc's heap."""

from __future__ import annotations

import gevent
import pytest

from dddp.server import heap


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_freed_memory_in_the_middle_of_the_heap_is_given_back(monkeypatch: pytest.MonkeyPatch) -> None:
    if heap._glibc() is None:
        pytest.skip("the C library is not glibc")
    monkeypatch.setattr(heap, "TRIM_INTERVAL", 0.05)
    monkeypatch.setattr(heap, "TRIM_FREE_BYTES", 16 << 20)
    # 60 KB blocks (below glibc's mmap threshold: in the heap), every other one kept: the
    # freed ones are in the middle of the heap, where free() alone never returns them.
    blocks = [bytes(60_000) for _ in range(2_000)]
    kept = blocks[::2]
    del blocks
    assert heap.free_heap_bytes(heap._glibc()) > 32 << 20
    before = resident_bytes()
    trimmer = heap.start_heap_trimmer()
    assert trimmer is not None
    try:
        gevent.sleep(0.2)
    finally:
        trimmer.kill()
    assert before - resident_bytes() > 32 << 20
    assert len(kept) == 1_000


class FakeLibc:
    """glibc's two calls the trimmer makes: its heap's free bytes are set by the test, and
    a trim gives back what it can (`returnable`)."""

    def __init__(self) -> None:
        self.free = 0
        self.returnable = 0
        self.trims = 0

    def mallinfo2(self) -> object:
        return type("Info", (), {"fordblks": self.free})()

    def malloc_trim(self, _pad: int) -> int:
        self.trims += 1
        self.free -= self.returnable
        self.returnable = 0
        return 1


def test_free_memory_a_trim_cannot_give_back_sets_off_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each trim runs a full pass of the cyclic collector (half a second with 10,000 clients):
    only memory freed since the last trim, not fragments it left, may set off the next."""
    monkeypatch.setattr(heap, "TRIM_INTERVAL", 0.01)
    monkeypatch.setattr(heap, "TRIM_FREE_BYTES", 100)
    collections: list[None] = []
    monkeypatch.setattr(heap.gc, "collect", lambda *args: collections.append(None))
    libc = FakeLibc()
    trimmer = gevent.spawn(heap._trim_now_and_then, libc)
    try:
        libc.free, libc.returnable = 500, 200  # a burst closed: 300 stay free, in fragments
        gevent.sleep(0.1)
        assert (libc.trims, len(collections), libc.free) == (1, 1, 300)
        libc.free = 350  # a little more freed: not enough
        gevent.sleep(0.05)
        assert libc.trims == 1
        libc.free = 150  # the free memory is reused, then more than TRIM_FREE_BYTES freed
        gevent.sleep(0.05)
        libc.free = 300
        gevent.sleep(0.05)
        assert (libc.trims, len(collections)) == (2, 2)
    finally:
        trimmer.kill()


def test_no_trim_while_a_burst_goes_on_one_once_it_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the free memory keeps changing, a burst is going on and reuses what it frees:
    a trim then (a full collection in the middle of 10,000 subscriptions) gives nothing back."""
    monkeypatch.setattr(heap, "TRIM_INTERVAL", 0.01)
    monkeypatch.setattr(heap, "TRIM_FREE_BYTES", 100)
    monkeypatch.setattr(heap.gc, "collect", lambda *args: None)
    libc = FakeLibc()
    trimmer = gevent.spawn(heap._trim_now_and_then, libc)
    try:
        for step in range(1, 31):  # more freed three times per look
            libc.free = 1000 + 200 * step
            gevent.sleep(0.003)
        assert libc.trims == 0
        gevent.sleep(0.05)  # the burst is over: the free memory stays where it is
        assert libc.trims == 1
    finally:
        trimmer.kill()
