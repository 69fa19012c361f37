"""The Change payload: the one contract between writers (Django side) and `dddp` servers.

A writer sends each Change with `pg_notify(channel, payload)` inside its own
transaction; PostgreSQL delivers it to every listening server at COMMIT, in
commit order, and never if the transaction (or the savepoint) rolls back.

Wire form: a compact JSON object,

    {"op": "save"|"delete", "c": collection, "id": doc id, "f": fields, "n": serial}

`f` holds the document's fields, EJSON-encoded, named as the collection
publishes them (absent for deletes; for a `partial` save only the fields that
changed, e.g. a many-to-many list). `n` is a per-process serial number:
PostgreSQL silently drops a NOTIFY identical to one already sent in the same
transaction, and two saves of one row can have identical contents (x=1, x=2,
x=1 again), so every payload must differ.

PostgreSQL limits a payload to 8000 bytes. A larger one is split into chunks
`"#<msg>:<i>:<n>:<piece>"` that `Reassembler` joins; a transaction's
notifications arrive together and in order, so chunks never interleave with
another transaction's, but the reassembler does not rely on it.

This module imports neither Django nor gevent.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from dddp.protocol import ejson

#: PostgreSQL's NOTIFY payload limit is 8000 bytes; leave room for the chunk header.
MAX_PAYLOAD_BYTES = 7999
CHUNK_DATA_BYTES = 7900
CHUNK_MARK = "#"
#: PostgreSQL truncates identifiers at 63 bytes (NAMEDATALEN - 1).
MAX_CHANNEL_BYTES = 63

#: The channel on which a server's method workers post write fences (D-82).
FENCE_CHANNEL = "dddp_fence"
#: Resume tokens revoked (logout, password change, removeOtherTokens, expiry): the
#: payload is a token's hash, and every server process closes the connections that
#: logged in with it (dddp.accounts; A-4).
REVOKED_TOKENS_CHANNEL = "dddp_revoked_tokens"

_serials = itertools.count(1)


@dataclass(frozen=True)
class Change:
    """One row's new state (or its deletion), as one collection publishes it."""

    op: str  # "save" or "delete"
    collection: str
    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    partial: bool = False  # only some fields: merge into what the observer holds
    serial: int = 0


@functools.lru_cache(maxsize=1024)
def channel_for(collection: str) -> str:
    """The NOTIFY channel of a collection: `dddp_<app_label>_<model>`, at most 63 bytes."""
    name = "dddp_" + "".join(ch if ch.isalnum() else "_" for ch in collection.lower())
    if len(name.encode("utf-8")) <= MAX_CHANNEL_BYTES:
        return name
    digest = hashlib.sha1(collection.encode("utf-8")).hexdigest()[:12]
    return name.encode("utf-8")[: MAX_CHANNEL_BYTES - 13].decode("utf-8", "ignore") + "_" + digest


def encode(change: Change) -> str:
    """The JSON text of a change (before chunking)."""
    wire: dict[str, Any] = {"op": change.op, "c": change.collection, "id": change.id}
    if change.op == "save":
        wire["f"] = ejson.to_json_value(change.fields)
        if change.partial:
            wire["p"] = 1
    wire["n"] = change.serial or next(_serials)
    return json.dumps(wire, separators=(",", ":"), ensure_ascii=False)


def payloads(change: Change) -> list[str]:
    """The NOTIFY payloads carrying `change`: one, or chunks when it is too large."""
    text = encode(change)
    data = text.encode("utf-8")
    if len(data) <= MAX_PAYLOAD_BYTES:
        return [text]
    pieces = _split_utf8(data, CHUNK_DATA_BYTES)
    message = f"{os.getpid():x}.{next(_serials):x}"
    return [f"{CHUNK_MARK}{message}:{i}:{len(pieces)}:{piece}" for i, piece in enumerate(pieces)]


def _split_utf8(data: bytes, size: int) -> list[str]:
    """Split UTF-8 bytes into text pieces of at most `size` bytes, never inside a character."""
    pieces = []
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte
            end -= 1
        pieces.append(data[start:end].decode("utf-8"))
        start = end
    return pieces


def decode(text: str) -> Change:
    """A Change from its JSON text; raises ValueError for anything else."""
    wire = json.loads(text)
    if (
        not isinstance(wire, dict)
        or wire.get("op") not in ("save", "delete")
        or not isinstance(wire.get("c"), str)
        or not isinstance(wire.get("id"), str)
    ):
        raise ValueError(f"not a dddp change: {text[:80]!r}")
    fields = ejson.from_json_value(wire.get("f", {}))
    if not isinstance(fields, dict):
        raise ValueError(f"a dddp change's fields must be an object: {text[:80]!r}")
    return Change(wire["op"], wire["c"], wire["id"], fields, bool(wire.get("p")), wire.get("n", 0))


class Reassembler:
    """Turns the payloads of one LISTEN connection back into Changes."""

    def __init__(self) -> None:
        self._partial: dict[tuple[str, str], list[str]] = {}

    def feed(self, channel: str, payload: str) -> Change | None:
        """The Change this payload completes, or None while chunks are missing."""
        if not payload.startswith(CHUNK_MARK):
            return decode(payload)
        message, index, count, piece = payload[1:].split(":", 3)
        key = (channel, message)
        pieces = self._partial.setdefault(key, [])
        if int(index) != len(pieces):
            del self._partial[key]
            raise ValueError(f"chunk {index} of {message} arrived out of order")
        pieces.append(piece)
        if len(pieces) < int(count):
            return None
        del self._partial[key]
        return decode("".join(pieces))

    def reset(self) -> None:
        """Forget incomplete messages (after the connection was lost)."""
        self._partial.clear()
