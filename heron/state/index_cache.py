"""A bounded copy of recent window-index reads, each checked against its source's index version.

Which windows a time range holds, with their retrieval embeddings, costs Redis a scan of the
range: milliseconds for the 1,800 windows of an hour, more with length. Questions about one
recorded video read the same range again and again, so a store keeps its last reads here, each
with the version of the source's index it was read at: a random token that every write to the
index replaces in the same transaction. The read script returns only the token when it still
matches, and the copy is served; a copy is never served for a version it was not read at, and
one store's copy sees every other client's writes at its next read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

Spans = tuple[tuple[int, float, float], ...]  # (index, t_start, t_end) per window, by start time
_SPAN_BYTES = 100  # what one span costs in Python objects, roughly: a tuple of an int and two floats


@dataclass(frozen=True)
class IndexRead:
    """One range read: the index version it was read at, its windows, their embeddings [n, p]."""

    version: str
    spans: Spans
    embeddings: np.ndarray | None  # float32 [n, p], read-only; None: not asked for or not all stored

    @property
    def nbytes(self) -> int:
        return len(self.spans) * _SPAN_BYTES + (0 if self.embeddings is None else self.embeddings.nbytes)


class IndexCache:
    """Least recently used range reads, at most ``max_bytes`` in all (0 keeps none); thread-safe,
    as the answer actor serves questions from several threads. Pickles empty (a Ray actor's store
    starts its own)."""

    def __init__(self, max_bytes: int = 32 << 20):
        self.max_bytes = max_bytes
        self.hits = 0  # reads served from here: for tests and benchmarks
        self._reads: OrderedDict[tuple, IndexRead] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> IndexRead | None:
        with self._lock:
            read = self._reads.get(key)
            if read is not None:
                self._reads.move_to_end(key)
            return read

    def hit(self) -> None:
        with self._lock:
            self.hits += 1

    def put(self, key: tuple, read: IndexRead) -> None:
        if read.embeddings is not None:
            read.embeddings.setflags(write=False)  # shared by every caller that reads it from here
        with self._lock:
            old = self._reads.pop(key, None)
            self._bytes -= old.nbytes if old is not None else 0
            if read.nbytes > self.max_bytes // 4:  # one huge range would evict everything else
                return
            self._reads[key] = read
            self._bytes += read.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._reads.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        """Forget every read (the next read of each range goes to Redis in full)."""
        with self._lock:
            self._reads.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._reads)

    def __getstate__(self) -> dict:
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])
