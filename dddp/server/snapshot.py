"""A Snapshot: an observer's documents at one moment, encoded once for every new subscriber.

A new subscriber is sent every current document as an `added` (D-52). When many
clients subscribe to one big publication at about the same time (a page load
by many users, a reconnect storm after a restart, bench/attacks.py's attack 2),
each used to encode all of them again for itself: 37 ms per 10,000 small
documents per client. The observer now takes a Snapshot when someone
subscribes and gives the same one to everyone who subscribes before its
documents change: the texts are encoded once, as the first of them reaches
each chunk, and every transport frames each chunk once (`SharedBatch`).

The observer keeps only a weak reference. A snapshot lives while some session
still has its documents to send, and for SNAPSHOT_LINGER seconds from its
making: subscribers arriving one after another (each sent everything before
the next comes) share it too, and a big publication's texts are not kept for
good beside its documents. (One greenlet lets them go in turn: ten thousand
clients subscribing at once make ten thousand snapshots, and a timed greenlet
each cost them more than their documents' texts.)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import gevent

from dddp.protocol import messages
from dddp.server.transport import SharedBatch

#: Text of a new subscription's documents given to the transport at a time.
CHUNK_BYTES = 65536
#: Seconds a snapshot is kept from its making, even when no session is sending it.
SNAPSHOT_LINGER = 10.0

Documents = dict[str, dict[str, dict[str, Any]]]  # collection -> id -> fields


class Snapshot:
    """Documents (collection -> id -> fields) as they were, with their `added` texts made once."""

    __slots__ = ("__weakref__", "_encodings", "documents")

    def __init__(self, documents: Documents):
        # Copies of the id maps, which the observer goes on editing; the field dicts are
        # shared, as an observer replaces a document's dict rather than editing it.
        self.documents: Documents = {name: dict(docs) for name, docs in documents.items() if docs}
        self._encodings = {name: _Encoding(name, docs) for name, docs in self.documents.items()}
        _linger(self)

    def texts(self, collection: str) -> Iterator[SharedBatch]:
        """The collection's `added` texts, in chunks of about CHUNK_BYTES, encoded on first use.

        The iterator keeps the snapshot alive until it is exhausted or dropped.
        """
        encoding = self._encodings[collection]
        index = 0
        while index < len(encoding.chunks) or encoding.encode_next():
            yield encoding.chunks[index]
            index += 1


#: Snapshots held for SNAPSHOT_LINGER seconds from their making, oldest first, with
#: when to let each go; and the greenlet that does, while there are any.
_lingering: deque[tuple[float, Snapshot]] = deque()
_keeper: list[gevent.Greenlet[Any, Any]] = []


def _linger(snapshot: Snapshot) -> None:
    _lingering.append((time.monotonic() + SNAPSHOT_LINGER, snapshot))
    if not _keeper:
        _keeper.append(gevent.spawn(_let_go_in_turn))


def _let_go_in_turn() -> None:
    try:
        while _lingering:
            wait = _lingering[0][0] - time.monotonic()
            if wait > 0:
                gevent.sleep(wait)
            now = time.monotonic()
            while _lingering and _lingering[0][0] <= now:
                _lingering.popleft()
    finally:
        _keeper.clear()


class _Encoding:
    """One collection's texts, encoded as far as the furthest reader has gone."""

    __slots__ = ("_left", "chunks")

    def __init__(self, name: str, docs: dict[str, dict[str, Any]]):
        self.chunks: list[SharedBatch] = []
        self._left = chunked(messages.added(name, doc_id, fields) for doc_id, fields in docs.items())

    def encode_next(self) -> bool:
        """Encode one more chunk; False when every document is encoded already."""
        texts = next(self._left, None)
        if texts is None:
            return False
        self.chunks.append(SharedBatch(texts))
        return True


def chunked(texts: Iterable[str]) -> Iterator[list[str]]:
    """`texts` in lists of about CHUNK_BYTES, each made only when it is asked for."""
    chunk: list[str] = []
    size = 0
    for text in texts:
        chunk.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
