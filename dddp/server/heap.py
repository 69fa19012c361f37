"""Giving memory back: what a burst of connections freed is returned to the system.

glibc's allocator keeps freed memory in its heap for reuse, and returns it to
the system only from the top of the heap. A burst of connections (3,000
sockets of a slowloris, bench/attacks.py's attack 5) allocates greenlet stacks
and buffers all through the heap; once they are closed, most of that memory is
free but stays in the process, which looks, from outside, like a leak (the
process stayed 30 MiB, 1.5 times, above its size before the burst).

A greenlet checks the heap every TRIM_INTERVAL seconds and, when TRIM_FREE_BYTES
more of it are free than after its last trim (or than the least it has seen
free since, once the free memory was reused), and the free memory has stayed
about the same since its previous look (a burst is over: while one goes on,
what it frees it reuses), runs the cyclic collector (what closed connections
left in reference cycles) and asks glibc (`malloc_trim`) to give back every
free page. Nothing where the C library is not glibc (the
trimmer does not start).

The collector's full pass walks every object the process holds: half a second
with 10,000 clients subscribed. Free memory that `malloc_trim` cannot give
back (fragments between live blocks) stays free after it; measured against a
fixed amount instead, the trimmer found the same 29 MiB free again every ten
seconds, and stalled every client for half a second each time, for nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from typing import Any

import gevent

logger = logging.getLogger("dddp.server")

#: Seconds between two looks at the heap.
TRIM_INTERVAL = 10.0
#: Free bytes in the heap past which they are given back.
TRIM_FREE_BYTES = 16 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _glibc() -> Any:
    """glibc, if this process runs on it and it has `mallinfo2` (2.33 and later), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def free_heap_bytes(libc: Any) -> int:
    """Bytes freed but kept in the heap (glibc's `fordblks`)."""
    return int(libc.mallinfo2().fordblks)


def start_heap_trimmer() -> gevent.Greenlet | None:
    """The trimming greenlet, or None where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return None
    return gevent.spawn(_trim_now_and_then, libc)


def _trim_now_and_then(libc: Any) -> None:
    left = 0  # free bytes after the last trim, or the fewest seen since
    before = 0  # free bytes at the last look
    while True:
        gevent.sleep(TRIM_INTERVAL)
        free = free_heap_bytes(libc)
        settled = abs(free - before) < TRIM_FREE_BYTES // 4  # no burst going on
        before = free
        if free - left <= TRIM_FREE_BYTES or not settled:
            # (Trimming during a burst was a full collection in the middle of 10,000
            # subscriptions, half a second, for memory the burst then reused.)
            left = min(left, free)
            continue
        # What closed connections left in reference cycles first (their greenlets,
        # handlers and sockets): Python's arenas it empties go back too.
        gc.collect()
        libc.malloc_trim(0)
        left = before = free_heap_bytes(libc)
        logger.debug(
            "gave back freed memory: %.1f MiB were free in the heap, %.1f MiB are",
            free / 2**20,
            left / 2**20,
        )
