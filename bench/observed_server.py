"""`python -m dddp` that tells how many observers its hub holds: on SIGUSR2 it writes
`{"observers": N, "by_publication": {...}}` to $DDDP_OBSERVERS_FILE.

For `users.py`, which checks that 1,000 logged-in users of `AllTicks` share one
observer while 1,000 of a per-user publication have one each. The hub is found
among the live objects, as a debugger would. The server freezes its startup
objects (`gc.freeze()`), out of `gc.get_objects()`'s sight: they are unfrozen
for the count and frozen again, and nothing else in the server changes.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from collections import Counter
from types import FrameType


def dump(_signum: int, _frame: FrameType | None) -> None:
    from dddp.server.hub import Hub

    gc.unfreeze()
    try:
        hubs = [thing for thing in gc.get_objects() if type(thing) is Hub]
    finally:
        gc.freeze()
    observers = [observer for hub in hubs for observer in hub.observers.values()]
    counts = {
        "hubs": len(hubs),
        "observers": len(observers),
        "by_publication": Counter(o.name for o in observers),
    }
    path = os.environ["DDDP_OBSERVERS_FILE"]
    with open(path + ".part", "w") as out:
        json.dump(counts, out)
    os.rename(path + ".part", path)  # so the reader never sees half a file


if __name__ == "__main__":
    signal.signal(signal.SIGUSR2, dump)
    from dddp.server.main import main

    sys.exit(main(prog="observed dddp"))
