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
