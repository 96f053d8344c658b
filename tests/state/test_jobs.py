"""JobStore against a real server: lifecycle, atomic updates, counters, listing."""

from __future__ import annotations

import threading

import pytest

from heron.errors import StateStoreError

pytestmark = pytest.mark.integration


def test_job_lifecycle(jobs):
    job_id = jobs.create_job("encode", {"source": "video-a"})
    job = jobs.get_job(job_id)
    assert (job.kind, job.params, job.status, job.progress, job.result, job.error) == (
        "encode",
        {"source": "video-a"},
        "queued",
        0.0,
        None,
        None,
    )
    jobs.update_job(job_id, status="running", progress=0.5)
    done = jobs.update_job(job_id, status="done", progress=1.0, result={"windows": 12})
    assert (done.status, done.progress, done.result, done.finished) == ("done", 1.0, {"windows": 12}, True)
    assert jobs.get_job(job_id) == done
    failed = jobs.update_job(jobs.create_job("answer"), status="failed", error="model missing")
    assert failed.error == "model missing"


def test_unknown_job_is_none_and_cannot_be_updated(jobs):
    assert jobs.get_job("nope") is None
    with pytest.raises(StateStoreError, match="nope"):
        jobs.update_job("nope", status="running")
    assert jobs.get_job("nope") is None and not jobs.db.client.exists(jobs._key("nope"))  # nothing left behind
    with pytest.raises(ValueError):
        jobs.update_job(jobs.create_job("encode"), status="finished")


def test_a_status_change_can_require_the_status_it_starts_from(jobs):
    job_id = jobs.create_job("batch")  # queued
    jobs.update_job(job_id, status="cancelled")  # a user cancels before the worker starts it
    kept = jobs.update_job(job_id, status="running", progress=0.1, add={"done": 1}, if_status=("queued",))
    assert (kept.status, kept.progress, kept.counters) == ("cancelled", 0.0, {})  # nothing written
    started = jobs.update_job(job_id, status="running", if_status=("queued", "cancelled"))
    assert started.status == "running" and jobs.get_job(job_id).status == "running"
    with pytest.raises(ValueError, match="paused"):
        jobs.update_job(job_id, status="done", if_status=("paused",))


def test_a_named_job_is_created_once(jobs):
    assert jobs.create_job("batch", {"n": 1}, job_id="nightly") == "nightly"
    with pytest.raises(StateStoreError, match="already exists"):
        jobs.create_job("batch", {"n": 2}, job_id="nightly")
    assert jobs.get_job("nightly").params == {"n": 1}


def test_counters_add_up_under_concurrent_updates(jobs):
    job_id = jobs.create_job("batch")

    def work():
        for _ in range(50):
            jobs.update_job(job_id, add={"done": 1, "pending": -1})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert jobs.get_job(job_id).counters == {"done": 200, "pending": -200}


def test_jobs_are_listed_newest_first_and_by_kind(jobs):
    first = jobs.create_job("ingest")
    second = jobs.create_job("batch")
    third = jobs.create_job("batch")
    assert [j.job_id for j in jobs.list_jobs()] == [third, second, first]
    assert [j.job_id for j in jobs.list_jobs(kind="batch", limit=1)] == [third]
    assert jobs.delete_job(second) and not jobs.delete_job(second)
    assert [j.job_id for j in jobs.list_jobs()] == [third, first]
