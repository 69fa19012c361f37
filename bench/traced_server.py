"""`python -m dddp` with tracemalloc on: SIGUSR1 dumps a snapshot to $DDDP_TRACE_PREFIX-N.snap.

For `capacity.py --traced`, which snapshots the server at its baseline and with
all connections open, and prints which source lines hold the difference. Only
allocations through Python's allocators are seen: not the interpreter's frame
stacks (mmap'd chunks) nor the kernel's socket buffers, so the sum is below the
RSS growth. Tracing also slows the server and inflates its RSS.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import tracemalloc
from types import FrameType

#: Frames kept per allocation: enough to see which server line made a library allocate.
TRACE_DEPTH = 30

_numbers = itertools.count(1)


def dump(_signum: int, _frame: FrameType | None) -> None:
    path = f"{os.environ['DDDP_TRACE_PREFIX']}-{next(_numbers)}.snap"
    tracemalloc.take_snapshot().dump(path + ".part")
    os.rename(path + ".part", path)  # so the reader never sees half a file


if __name__ == "__main__":
    tracemalloc.start(TRACE_DEPTH)
    signal.signal(signal.SIGUSR1, dump)
    from dddp.server.main import main

    sys.exit(main(prog="traced dddp"))
