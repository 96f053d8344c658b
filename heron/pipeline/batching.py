"""Dynamic batching: concurrent requests answered in one forward pass, each one's text streamed back.

Callers (threads: the answer actor serves many calls at once) ``submit`` a request and get a
``Ticket``. One worker thread takes the first waiting request, gathers whatever else arrives
within ``window_s`` (up to ``max_batch``), and runs them as one batch; each ticket receives its
own text deltas as they are generated, then its answer (or its error). While a batch runs, new
requests queue for the next one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from heron.errors import HeronError

log = logging.getLogger(__name__)

RunBatch = Callable[[list[Any], Callable[[int, str], None]], list[Any]]  # (requests, on_text) -> results


class BatcherClosedError(HeronError, RuntimeError):
    """The answer batcher was closed while a request was waiting (the service is shutting down)."""


@dataclass
class Ticket:
    """One submitted request: its text deltas as they come, then its result."""

    request: Any
    submitted: float = field(default_factory=time.perf_counter)
    first_text: float | None = None  # perf_counter when the first text arrived
    _deltas: queue.Queue = field(default_factory=queue.Queue)  # str deltas, then _END
    _result: Any = None

    def text(self, delta: str) -> None:
        if self.first_text is None:
            self.first_text = time.perf_counter()
        self._deltas.put(delta)

    def finish(self, result: Any) -> None:
        self._result = result
        self._deltas.put(_END)

    def stream(self, timeout_s: float | None = None) -> Iterator[str]:
        """Text deltas until the answer is complete (then ``result()`` has it); raises its error.

        ``timeout_s`` bounds each wait for the next delta (queue.Empty when it passes)."""
        while (delta := self._deltas.get(timeout=timeout_s)) is not _END:
            yield delta
        self._deltas.put(_END)  # a second stream() or result() ends at once
        if isinstance(self._result, BaseException):
            raise self._result

    def result(self, timeout_s: float | None = None) -> Any:
        """The answer, once complete (its text deltas are skipped); raises the request's error."""
        for _ in self.stream(timeout_s):
            pass
        return self._result


_END = object()


class Batcher:
    """Runs ``run_batch`` over batches of concurrently submitted requests, on one worker thread."""

    def __init__(self, run_batch: RunBatch, *, max_batch: int = 16, window_s: float = 0.005):
        self.run_batch, self.max_batch, self.window_s = run_batch, max_batch, window_s
        self._waiting: queue.Queue[Ticket | None] = queue.Queue()
        self._closed = threading.Event()
        self.batches = 0  # counters for metrics and tests
        self.batched_requests = 0
        self._worker = threading.Thread(target=self._loop, name="heron-batcher", daemon=True)
        self._worker.start()

    @property
    def depth(self) -> int:
        """Requests waiting for a batch."""
        return self._waiting.qsize()

    def submit(self, request: Any) -> Ticket:
        if self._closed.is_set():
            raise BatcherClosedError("the answer batcher is closed; the service is shutting down")
        ticket = Ticket(request)
        self._waiting.put(ticket)
        return ticket

    def close(self) -> None:
        """Stop after the batch in progress; waiting requests fail with BatcherClosedError."""
        self._closed.set()
        self._waiting.put(None)
        self._worker.join(timeout=30)
        while not self._waiting.empty():
            ticket = self._waiting.get_nowait()
            if ticket is not None:
                ticket.finish(BatcherClosedError("the service shut down before this request was answered"))

    def _loop(self) -> None:
        while not self._closed.is_set():
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            deadline = time.perf_counter() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    more = self._waiting.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if more is None:
                    self._waiting.put(None)  # closing: finish this batch, then stop
                    break
                batch.append(more)
            self._run(batch)

    def _run(self, batch: list[Ticket]) -> None:
        self.batches += 1
        self.batched_requests += len(batch)
        try:
            results = self.run_batch([t.request for t in batch], lambda i, delta: batch[i].text(delta))
        except Exception as error:  # the whole batch failed (a bug, a device error): every caller hears it
            log.exception("answering a batch of %d failed", len(batch))
            results = [error] * len(batch)
        for ticket, result in zip(batch, results):
            ticket.finish(result)
