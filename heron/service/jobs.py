"""Background jobs of the HTTP service: ingests and batches, their progress kept in Redis.

The HTTP service answers ``POST /v1/sources`` at once with a job id; ``GET /v1/jobs/{id}`` reads
the job record (status, progress 0..1, the ingest report or the error) from the JobStore, so any
process that shares the Redis can follow it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from heron.errors import HeronError, JobNotFoundError, StateStoreError
from heron.pipeline.inputs import BatchItem
from heron.service.batch import BatchRun
from heron.service.heron import Heron
from heron.state import Job, JobStore

log = logging.getLogger(__name__)

STOP_WAIT_S = 60.0  # a cancelled batch finishes its videos in flight within this, or a re-post is refused


class IngestJobs:
    """Runs ingests on ``workers`` background threads (they share the Heron's actors)."""

    def __init__(self, heron: Heron, jobs: JobStore, *, workers: int = 2):
        self.heron, self.jobs = heron, jobs
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="heron-ingest")
        self._closed = threading.Event()

    def submit(
        self, source: str, *, start: float | None = None, end: float | None = None, name: str | None = None
    ) -> Job:
        """Queue an ingest of ``source`` (a local path the caller has checked); returns the job."""
        job_id = self.jobs.create_job("ingest", {"source": name or source, "start": start, "end": end})
        self._pool.submit(self._run, job_id, source, start, end)
        return self.jobs.get_job(job_id)

    def _run(self, job_id: str, source: str, start: float | None, end: float | None) -> None:
        if self._closed.is_set():
            self.jobs.update_job(job_id, status="cancelled", error="the service shut down before the job started")
            return
        self.jobs.update_job(job_id, status="running")

        def progress(done: int, total: int | None) -> None:
            if total:
                self.jobs.update_job(job_id, progress=min(1.0, done / total))

        try:
            report = self.heron.ingest(source, start=start, end=end, on_progress=progress)
        except HeronError as error:
            self.jobs.update_job(job_id, status="failed", error=f"{type(error).__name__}: {error}")
        except Exception as error:  # a bug or a dead cluster: the job says so instead of hanging "running"
            log.exception("ingest job %s failed", job_id)
            self.jobs.update_job(job_id, status="failed", error=f"internal error: {type(error).__name__}: {error}")
        else:
            self.jobs.update_job(job_id, status="done", progress=1.0, result=dataclasses.asdict(report))

    def close(self) -> None:
        """Let running ingests finish; queued ones are marked cancelled."""
        self._closed.set()
        self._pool.shutdown(wait=True)


class BatchJobs:
    """Runs batches (``BatchRun``) in the background, ``workers`` at once, for the HTTP service."""

    def __init__(self, heron: Heron, *, workers: int = 2):
        self.heron, self.jobs = heron, JobStore(heron.db)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="heron-batches")
        self._runs: dict[str, Future] = {}  # job id -> its run in the pool (queued or running)
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def submit(
        self,
        items: list[BatchItem],
        *,
        job_id: str | None = None,
        resolve: Callable[[str], str] | None = None,
    ) -> Job:
        """Queue a batch, or resume the job of that id; returns its job record at once.

        The same job posted while it runs here is that run (nothing starts twice); posted while a
        cancelled run of it still finishes its videos in flight, it starts once that one stopped."""
        run = BatchRun(self.heron, items, job_id=job_id, resolve=resolve)
        run.open_job()
        with self._lock:
            previous = self._runs.get(run.job_id)
        if previous is not None and not previous.done():
            if self.jobs.get_job(run.job_id).status != "cancelled":
                return self.jobs.get_job(run.job_id)
            wait([previous], timeout=STOP_WAIT_S)
            if not previous.done():
                raise StateStoreError(f"batch {run.job_id} is still stopping after a cancel; post it again shortly")
        self.jobs.update_job(run.job_id, status="queued")  # a job cancelled or done before is resumed
        with self._lock:
            self._runs[run.job_id] = self._pool.submit(self._run, run)
        return self.jobs.get_job(run.job_id)

    def _run(self, run: BatchRun) -> None:
        try:
            if self._closed.is_set():
                return
            run.run(start_if=("queued",))  # unless cancelled since it was queued
        except Exception as error:  # the job says so instead of hanging "running"
            log.exception("batch %s failed", run.job_id)
            self.jobs.update_job(run.job_id, status="failed", error=f"{type(error).__name__}: {error}")

    def cancel(self, job_id: str) -> Job:
        """Stop a batch after its videos in flight (also one another process runs: it watches)."""
        job = self.jobs.get_job(job_id)
        if job is None:
            raise JobNotFoundError(f"no job {job_id!r}")
        return job if job.finished else self.jobs.update_job(job_id, status="cancelled")

    def close(self) -> None:
        """Stop the batches running here after their videos in flight, and wait for them; they
        stay resumable (their status says "cancelled": post them again)."""
        self._closed.set()
        with self._lock:
            running = [job_id for job_id, future in self._runs.items() if not future.done()]
        for job_id in running:
            self.cancel(job_id)
        self._pool.shutdown(wait=True)
