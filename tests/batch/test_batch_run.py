"""Batches end to end: real Ray actors, a real Redis, the demo model answering about an archive.

Every (video, question) comes out exactly once, broken files as rows with their typed error; a
rerun recomputes nothing; cancel stops it and a rerun finishes it; two jobs run at once; a
manifest of URLs served on loopback works like local files.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections import Counter

import pytest

from heron.pipeline.inputs import read_inputs
from heron.service.batch import BatchRun
from heron.state import JobStore, ResultStore

from .conftest import QUESTIONS, make_archive

pytestmark = pytest.mark.integration


def _check_rows(rows, truth, questions=QUESTIONS):
    """Each (video, question) once; answers right for the clips, typed errors for broken files."""
    assert Counter((r["video"], r["question"]) for r in rows) == {(v, q): 1 for v in truth for q in questions}
    for row in rows:
        expected = truth[row["video"]]
        if expected.endswith("Error"):
            assert row["answer"] is None and row["error"]["type"] == expected, row
        else:
            assert row["error"] is None and row["spans"], row
            if row["question"] == QUESTIONS[0]:
                assert row["answer"] == expected, row


def test_every_pair_once_failures_are_rows_and_a_rerun_recomputes_nothing(heron, archive, tmp_path):
    root, truth = archive
    items = read_inputs(str(root), QUESTIONS)
    run = BatchRun(heron, items, job_id="archive")
    summary = run.run(out=str(tmp_path / "results.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    _check_rows(rows, truth)
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)  # input order
    assert (summary.done, summary.failed, summary.pending, summary.status) == (12, 6, 0, "done") and not summary.ok
    job = JobStore(heron.db).get_job("archive")
    assert job.status == "done" and job.counters == {"done": 12, "failed": 6, "pending": 0}
    assert job.params["videos"] == 9 and job.params["settings"]["model"] == rows[0]["model"]

    asked = heron.answer_stats()["requests"]
    again = BatchRun(heron, read_inputs(str(root), QUESTIONS), job_id="archive").run(out=str(tmp_path / "again.jsonl"))
    assert again.skipped == 18 and heron.answer_stats()["requests"] == asked  # nothing answered twice
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "results.jsonl").read_text()


def test_parquet_holds_the_same_rows(heron, archive, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    root, truth = archive
    run = BatchRun(heron, read_inputs(str(root), QUESTIONS[:1]), job_id="parquet")
    run.run(out=str(tmp_path / "results.parquet"), parquet=True)
    table = pq.read_table(tmp_path / "results.parquet").to_pylist()
    assert sorted((r["video"], r["answer"]) for r in table) == sorted(
        (v, None if c.endswith("Error") else c) for v, c in truth.items()
    )
    assert all(json.loads(r["spans"]) for r in table if r["answer"])


def test_cancel_stops_after_the_videos_in_flight_and_a_rerun_finishes_exactly_once(heron, tmp_path):
    truth = make_archive(tmp_path, seconds=6.0)  # not cached yet: each video takes a while
    items = read_inputs(str(tmp_path), ["Is there a square?"])
    run = BatchRun(heron, items, job_id="cancelled", videos_in_flight=1)
    results = ResultStore(heron.db)

    def cancel_after_the_first_commit():
        deadline = time.monotonic() + 60
        while not results.committed("cancelled") and time.monotonic() < deadline:
            time.sleep(0.05)
        JobStore(heron.db).update_job("cancelled", status="cancelled")  # what `heron jobs cancel` does

    canceller = threading.Thread(target=cancel_after_the_first_commit)
    canceller.start()
    first = run.run()
    canceller.join(timeout=60)
    assert first.status == "cancelled" and 0 < first.done + first.failed < len(items) and first.pending > 0
    second = BatchRun(heron, items, job_id="cancelled").run()
    assert second.status == "done" and second.skipped == first.done + first.failed
    assert second.done + second.failed == len(items) and second.pending == 0
    rows = results.rows("cancelled")
    assert Counter(r["video"] for r in rows) == {v: 1 for v in truth}


def test_a_job_cancelled_while_queued_starts_nothing_when_its_worker_comes(heron, archive):
    root, _ = archive
    items = read_inputs(str(root), ["Is there a square?"])
    run = BatchRun(heron, items, job_id="cancelled-queued")
    run.open_job()  # queued, as a service queues it
    JobStore(heron.db).update_job("cancelled-queued", status="cancelled")  # DELETE before a worker is free
    summary = run.run(start_if=("queued",))
    assert (summary.status, summary.done, summary.failed, summary.pending) == ("cancelled", 0, 0, len(items))
    assert JobStore(heron.db).get_job("cancelled-queued").status == "cancelled"
    assert ResultStore(heron.db).rows("cancelled-queued") == []


def test_two_jobs_at_once_each_get_their_own_complete_results(heron, archive):
    root, truth = archive
    runs = [
        BatchRun(heron, read_inputs(str(root), [question]), job_id=f"twin-{n}") for n, question in enumerate(QUESTIONS)
    ]
    threads = [threading.Thread(target=r.run) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
        assert not thread.is_alive()
    for n, question in enumerate(QUESTIONS):
        _check_rows(ResultStore(heron.db).rows(f"twin-{n}"), truth, [question])


def test_a_manifest_of_urls_served_on_loopback(heron, archive, tmp_path):
    root, truth = archive
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        clips = {f"{base}/{p[len(str(root)) + 1 :]}": c for p, c in truth.items() if not c.endswith("Error")}
        clips[f"{base}/no/such/clip.mp4"] = "SourceUnreachableError"
        manifest = tmp_path / "urls.txt"
        manifest.write_text("".join(url + "\n" for url in clips))
        summary = BatchRun(heron, read_inputs(str(manifest), QUESTIONS[:1]), job_id="urls").run()
        rows = ResultStore(heron.db).rows("urls")
    finally:
        server.shutdown()
    _check_rows(rows, clips, QUESTIONS[:1])
    assert summary.failed == 1


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass
