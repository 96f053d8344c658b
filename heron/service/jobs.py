"""Ingest jobs: a source decoded and encoded in the background, its progress kept in Redis.

The HTTP service answers ``POST /v1/sources`` at once with a job id; ``GET /v1/jobs/{id}`` reads
the job record (status, progress 0..1, the ingest report or the error) from the JobStore, so any
process that shares the Redis can follow it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from heron.errors import HeronError
from heron.service.heron import Heron
from heron.state import Job, JobStore

log = logging.getLogger(__name__)


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
