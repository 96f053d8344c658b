"""What the HTTP routes share: the warm Heron, the limits, the media resolver, jobs and metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from heron.api.errors import NotFound, TooLarge, TooManyRequests
from heron.api.media import MediaResolver
from heron.api.metrics import Metrics
from heron.config import ServeConfig
from heron.service import Heron
from heron.service.jobs import BatchJobs, IngestJobs
from heron.state import JobStore


@dataclass
class ApiService:
    heron: Heron
    cfg: ServeConfig
    upload_dir: Path
    api_key: str | None = None
    metrics: Metrics = field(default_factory=Metrics)
    model_id: str = "heron"

    def __post_init__(self) -> None:
        self.media = MediaResolver(self.cfg, self.upload_dir)
        self.jobs = JobStore(self.heron.db)
        self.ingest_jobs = IngestJobs(self.heron, self.jobs)
        self.batch_jobs = BatchJobs(self.heron)
        self._slots = threading.BoundedSemaphore(self.cfg.max_concurrent)
        self.ready = threading.Event()  # set once the model is loaded
        self.metrics.watch_streams(self._stream_records)
        self._webhooks = None

    def acquire(self) -> None:
        """A slot for one request, or 429 with Retry-After when the service is full."""
        if not self._slots.acquire(blocking=False):
            self.metrics.rejected.inc()
            raise TooManyRequests(
                f"the service is serving {self.cfg.max_concurrent} requests; retry shortly",
                headers={"Retry-After": str(self.cfg.retry_after_s)},
            )

    def release(self) -> None:
        self._slots.release()

    def check_text(self, text: str, what: str = "the question") -> str:
        if len(text) > self.cfg.max_question_chars:
            raise TooLarge(f"{what} is {len(text)} characters, beyond this service's {self.cfg.max_question_chars}")
        return text

    def max_tokens(self, asked: int | None) -> int | None:
        if asked is not None and asked > self.cfg.max_tokens:
            raise TooLarge(f"max_tokens {asked} is beyond this service's cap of {self.cfg.max_tokens}")
        return asked

    def job(self, job_id: str):
        job = self.jobs.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def _stream_records(self):
        streams = self.heron.streams
        return [(streams.store.get(sid) or {"id": sid}, streams.alerts.count(sid)) for sid in streams.store.ids()]

    def start_webhooks(self) -> None:
        """Deliver alerts to the watches' webhooks (once, on the first stream or watch)."""
        if self._webhooks is None:
            self._webhooks = self.heron.webhooks()

    def warm_up(self) -> None:
        """Start the answer actor and load the model, so the first question is fast; then ready."""
        self.heron.warm_up()
        self.ready.set()

    def close(self) -> None:
        self.batch_jobs.close()
        self.ingest_jobs.close()
        if self._webhooks is not None:
            self._webhooks.close()
        self.heron.close()
