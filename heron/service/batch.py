"""Archive batches: many videos x many questions, resumable, each result committed exactly once.

    items = read_inputs("archive/", ["Is there a person?"])
    summary = BatchRun(heron, items, job_id="nightly").run(out="results.jsonl")

- **The job** is a record in Redis (``JobStore``): inputs, questions, model fingerprint, decode
  settings, counts (done, failed, pending), status. Its id is given, or derived from what it
  asks (items, model, settings), so running the same command again finds the same job.
- **Exactly once**: each result is keyed by (content id, question, model fingerprint, decode
  settings, range) and committed once (``ResultStore``: a Lua HSETNX that also counts it); work
  whose key is committed is skipped, and the results file is written from committed rows only
  (atomically, as the job goes and at the end), so it holds each (video, question) once.
- **Resumable**: kill the process at any moment (SIGKILL included) and run it again: committed
  answers are not recomputed, and windows already encoded come from the latents cache.
- **Failures are results**: a video that cannot be decoded becomes one row per question with its
  typed error; the job goes on. Anything else (a bug, a dead cluster) is left uncommitted and
  logged, so a rerun tries it again.
- **Throughput**: ``videos_in_flight`` videos at once, each ingested with its own decode actors
  into the shared encode pool (``pipeline.ingest.parallel_ingests``); each video's questions go to
  the answer actor together, where they are batched with other videos' questions. Ray schedules
  the calls, so on a cluster the same command uses every node's actors (docs/batch.md says why
  this is Ray core actor pools, not Ray Data).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from heron.data.atomic import atomic_path
from heron.errors import ConfigError, HeronError, StateStoreError
from heron.pipeline.answer import Answer, AnswerRequest
from heron.pipeline.fingerprint import encoder_settings
from heron.pipeline.inputs import BatchItem
from heron.pipeline.sources import content_id
from heron.service.reports import IngestReport
from heron.state import JobStore, ResultStore

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0  # a running batch refreshes its job's updated_at this often (stale: its process died)


@dataclass
class BatchSummary:
    """How a run of a batch ended; counts are of the job's items, this run and earlier ones."""

    job_id: str
    items: int
    done: int  # answered
    failed: int  # rows with an error
    skipped: int  # committed before this run: not recomputed
    pending: int  # not committed (cancelled, or an unexpected error: a rerun tries them again)
    seconds: float
    status: str  # "done" or "cancelled"
    out: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.pending == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def job_id_for(items: list[BatchItem], settings: dict) -> str:
    """A job's id from what it asks: the same command (items, model, settings) is the same job."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for item in items:
        digest.update(f"{item.video}\0{item.question}\0{item.start}\0{item.end}\n".encode())
    return "batch-" + digest.hexdigest()


class BatchRun:
    """One run of a batch job over ``items`` with a warm ``Heron``; ``run`` may be repeated."""

    def __init__(
        self,
        heron,
        items: list[BatchItem],
        *,
        job_id: str | None = None,
        videos_in_flight: int | None = None,
        progress: bool = False,
        flush_every_s: float = 10.0,
        resolve: Callable[[str], str] | None = None,
    ):
        if not items:
            raise ConfigError("a batch needs at least one (video, question)")
        self.heron, self.items = heron, items
        self.settings = encoder_settings(heron.cfg)
        self.job_id = job_id or job_id_for(items, self.settings)
        self.jobs, self.results = JobStore(heron.db), ResultStore(heron.db)
        self.videos_in_flight = videos_in_flight or heron.cfg.ingest.parallel_ingests
        self.progress, self.flush_every_s = progress, flush_every_s
        self.resolve = resolve  # a video as given -> what to ingest (the API's guarded fetch); None: as is
        self._keys: dict[int, str] = {}  # item index -> result key
        self._lock = threading.Lock()  # the counters and the bar, updated by the pool's threads
        self._cancelled = threading.Event()
        self._finished = threading.Event()

    # --- the job record ---------------------------------------------------------------------------

    def open_job(self) -> None:
        """Create the job, or check that the one found was made with the same model and settings."""
        job = self.jobs.get_job(self.job_id)
        if job is not None:
            if job.kind != "batch" or job.params.get("settings") != self.settings:
                raise StateStoreError(
                    f"job {self.job_id} was made with another model or other decode settings; give a new "
                    f"--job name, or `heron jobs rm {self.job_id}` first"
                )
            return
        videos = sorted({i.video for i in self.items})
        params = {
            "inputs": videos[:1000],  # the first 1000, for `heron jobs show`; the count is exact
            "videos": len(videos),
            "questions": sorted({i.question for i in self.items})[:100],
            "items": len(self.items),
            "settings": self.settings,
        }
        try:
            self.jobs.create_job("batch", params, job_id=self.job_id)
        except StateStoreError:  # another process created it a moment ago: the same job
            pass

    def key_of(self, item: BatchItem) -> str:
        """The result key: what was asked (content, question, model, settings, range), not where."""
        if item.index not in self._keys:
            try:
                source = content_id(item.video)
            except HeronError:  # a missing file or a bad URL: its rows are errors, keyed by its name
                source = "unreadable:" + item.video
            what = json.dumps([source, item.question, self.settings, item.start, item.end])
            self._keys[item.index] = hashlib.sha256(what.encode()).hexdigest()[:32]
        return self._keys[item.index]

    # --- running ----------------------------------------------------------------------------------

    def run(self, out: str | None = None, *, parquet: bool = False, start_if: Collection[str] = ()) -> BatchSummary:
        """Answer every item not committed yet; write ``out`` from the committed rows.

        ``start_if``: the job statuses it may start from (any when empty); a service passes
        ("queued",), so a job cancelled after it was queued ends at once, still cancelled."""
        clock = time.perf_counter()
        self.open_job()
        self._cancelled.clear()
        committed = self.results.committed(self.job_id)
        todo = [item for item in self.items if self.key_of(item) not in committed]
        skipped = len(self.items) - len(todo)
        by_video: dict[str, list[BatchItem]] = defaultdict(list)
        for item in todo:
            by_video[item.video].append(item)
        self._videos_total = len({i.video for i in self.items})
        self._videos_done = self._videos_total - len(by_video)
        self._failed = sum(1 for item in self.items if committed.get(self.key_of(item)) is True)
        started = self.jobs.update_job(
            self.job_id,
            status="running",
            error="",
            counters={"done": skipped - self._failed, "failed": self._failed, "pending": len(todo)},
            if_status=start_if,
        )
        if started.status != "running":  # cancelled before it started: nothing runs
            self._cancelled.set()
            by_video.clear()
        self._windows, self._started = 0, time.perf_counter()
        self._out, self._parquet, self._last_flush = out, parquet, time.monotonic()
        self._bar = tqdm(
            total=len(self.items),
            initial=skipped,
            unit="answer",
            desc=self.job_id,
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self._show()
        if by_video:
            self.heron.preload()  # the model loads while the first videos decode
        self._finished.clear()
        self._pending_answers = _Outstanding()
        threading.Thread(target=self._heartbeat, name="heron-batch-heartbeat", daemon=True).start()
        try:
            with ThreadPoolExecutor(self.videos_in_flight, thread_name_prefix="heron-batch") as pool:
                for _ in pool.map(self._video, by_video.values()):
                    pass
            self._pending_answers.wait_zero()  # answers still being generated (each commits as it comes)
        finally:
            self._finished.set()
            self._bar.close()
            summary = self._end(clock, skipped)
        return summary

    def _video(self, items: list[BatchItem]) -> None:
        """Ingest one video (once per distinct range), ask all its questions at once, commit them."""
        if self._cancel_requested():
            return
        video = items[0].video
        try:
            local = self.resolve(video) if self.resolve else video
            reports = {(i.start, i.end): None for i in items}
            for start, end in reports:
                reports[start, end] = self.heron.ingest(local, start=start, end=end)
        except HeronError as error:
            for item in items:
                self._commit(item, self._row(item, error=error))
            self._count_video()
            return
        except Exception:
            log.exception("batch %s: %s failed unexpectedly; a rerun tries it again", self.job_id, video)
            return
        self._count_windows(sum(r.windows_encoded for r in reports.values()))
        requests = [
            AnswerRequest.about(
                item.question,
                reports[item.start, item.end].source_id,
                start=item.start or 0.0,
                end=item.end if item.end is not None else float("inf"),
            )
            for item in items
        ]
        try:  # sent without waiting: this thread takes the next video while the answer actor batches
            futures = self.heron.answer_async(requests)
        except Exception:
            log.exception("batch %s: answering about %s failed unexpectedly; a rerun tries it", self.job_id, video)
            return
        left = _Countdown(len(items), self._count_video)
        self._pending_answers.add(len(futures))
        for item, future in zip(items, futures):
            future.add_done_callback(functools.partial(self._answered, item, reports[item.start, item.end], left))

    def _answered(self, item: BatchItem, report: IngestReport, left: _Countdown, future: Future) -> None:
        """An answer came back (on a Ray thread): commit its row, or leave it for a rerun."""
        try:
            try:
                row = self._row(item, future.result(), report)
            except HeronError as error:
                row = self._row(item, error=error)
            self._commit(item, row)
        except Exception:  # a callback's errors would vanish: say so; the rerun tries it again
            log.exception(
                "batch %s: %s %r not committed; a rerun tries it again", self.job_id, item.video, item.question
            )
        finally:
            left.one_done()
            self._pending_answers.done()

    def _commit(self, item: BatchItem, row: dict) -> None:
        failed = row["error"] is not None
        written = self.results.commit(self.job_id, self.key_of(item), row, failed=failed)
        with self._lock:
            self._bar.update(1)
            self._failed += int(written and failed)

    def _count_windows(self, windows: int) -> None:
        with self._lock:
            self._windows += windows

    def _count_video(self) -> None:
        with self._lock:
            self._videos_done += 1
            self._show()
        if self._out and time.monotonic() - self._last_flush > self.flush_every_s:
            self._last_flush = time.monotonic()
            self.write(self._out, parquet=self._parquet)

    def _show(self) -> None:
        rate = self._windows / max(time.perf_counter() - self._started, 1e-9)
        self._bar.set_postfix_str(
            f"videos {self._videos_done}/{self._videos_total}, {rate:.1f} windows/s, {self._failed} failed",
            refresh=True,
        )

    def _row(
        self,
        item: BatchItem,
        answer: Answer | None = None,
        ingest: IngestReport | None = None,
        *,
        error: HeronError | None = None,
    ) -> dict:
        row = {
            "index": item.index,
            "video": item.video,
            "question": item.question,
            "from": item.start,
            "to": item.end,
            "model": self.settings["model"],
        }
        if error is not None:
            return {**row, "answer": None, "spans": [], "error": {"type": type(error).__name__, "message": str(error)}}
        return {
            **row,
            "answer": answer.text,
            "spans": [[round(a, 3), round(b, 3)] for a, b in answer.spans],
            "error": None,
            "warnings": list(answer.warnings),
            "source_id": ingest.source_id,
            "timings": {
                "answer_s": round(answer.seconds, 3),
                "ingest_s": round(ingest.seconds, 3),
                "cached": ingest.cached,
            },
        }

    def _cancel_requested(self) -> bool:
        """Whether the job was cancelled (``heron jobs cancel``, DELETE /v1/batches/{id}, ``cancel``
        — from any process): checked before each video, so the videos in flight finish."""
        if not self._cancelled.is_set():
            job = self.jobs.get_job(self.job_id)
            if job is None or job.status == "cancelled":
                self._cancelled.set()
        return self._cancelled.is_set()

    def _heartbeat(self) -> None:
        """Keep the job's updated_at fresh while it runs: an old one means its process died."""
        while not self._finished.wait(HEARTBEAT_S):
            try:
                self.jobs.update_job(self.job_id)
            except HeronError:  # Redis away for a moment: the commits say so loudly, this need not
                continue

    def cancel(self) -> None:
        """Stop after the videos in flight (their answers are committed; the rest stay pending)."""
        self.jobs.update_job(self.job_id, status="cancelled")
        self._cancelled.set()

    def _end(self, clock: float, skipped: int) -> BatchSummary:
        committed = self.results.committed(self.job_id)
        mine = [self.key_of(i) for i in self.items]
        failed = sum(1 for k in mine if committed.get(k) is True)
        done = sum(1 for k in mine if committed.get(k) is False)
        pending = len(self.items) - done - failed
        status = "cancelled" if self._cancelled.is_set() else "done"
        summary = BatchSummary(
            self.job_id, len(self.items), done, failed, skipped, pending, time.perf_counter() - clock, status, self._out
        )
        if self._out:
            self.write(self._out, parquet=self._parquet)
        progress = (done + failed) / len(self.items)
        self.jobs.update_job(
            self.job_id,
            status=status,
            progress=progress,
            result=summary.to_dict(),
            counters={"done": done, "failed": failed, "pending": pending},
        )
        return summary

    # --- output -----------------------------------------------------------------------------------

    def write(self, out: str, *, parquet: bool = False) -> Path:
        """The committed rows of these items, in input order, as JSONL (or Parquet), atomically."""
        rows = self.results.rows(self.job_id, [self.key_of(i) for i in self.items])
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            if parquet:
                write_parquet(rows, tmp)
            else:
                tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        return path


class _Countdown:
    """Calls ``then`` once, when ``one_done`` was called ``count`` times (from any threads)."""

    def __init__(self, count: int, then: Callable[[], None]):
        self._left, self._then, self._lock = count, then, threading.Lock()

    def one_done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._then()


class _Outstanding:
    """How many answers are sent and not yet committed; ``wait_zero`` until there are none."""

    def __init__(self):
        self._count, self._changed = 0, threading.Condition()

    def add(self, n: int) -> None:
        with self._changed:
            self._count += n

    def done(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_zero(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._count == 0)


def write_parquet(rows: list[dict], path: Path) -> None:
    """Rows as a Parquet table: nested fields (spans, error, timings, warnings) as JSON strings."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("Parquet output needs pyarrow: pip install pyarrow") from None
    nested = ("spans", "error", "timings", "warnings")
    flat = [{**r, **{name: json.dumps(r.get(name)) for name in nested}} for r in rows]
    pq.write_table(pa.Table.from_pylist(flat), str(path))
