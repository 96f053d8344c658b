"""Actors SIGKILLed while work is in flight: the job completes on its own, as an undisturbed run.

One warm Heron on the demo pipeline (real Ray, real Redis, the trained demo model). For each
actor kind, the OS process of the actor is killed with SIGKILL — as the OOM killer or a crash
would end it — at a moment when it holds work: a decode and an encode actor part-way through an
ingest, the answer actor in the middle of a batch of questions, an encode and the answer actor
in the middle of a ``BatchRun``, a live stream's actor in the middle of a window. Ray restarts the
actor and retries its calls (``max_restarts``, ``max_task_retries``); the caller does nothing.
The bar, each time: every window is stored once, with the latents and times of the undisturbed
run, the report counts each window once, and the answers equal the undisturbed run's (the demo
model is greedy).

Each actor is killed at most twice here: the default ``max_restarts`` is 2 per actor lifetime.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections import Counter

import numpy as np
import pytest

from heron.actors.calls import get
from heron.config import load_pipeline_config
from heron.data.scenes import appearing_square_frames
from heron.data.video_writer import write_video
from heron.pipeline.answer import AnswerRequest
from heron.pipeline.inputs import BatchItem
from heron.service import Heron
from heron.service.batch import BatchRun
from heron.state import ResultStore

pytestmark = [pytest.mark.integration]

QUESTIONS = ["What color is the square?", "Is there a red square at the end of the video?"]
WAIT_S = 120  # every wait below is bounded by this (a restart loads a model: ~5-20 s on 2 busy cores)


def _clip(path, seconds: float, appears, color=(220, 40, 40)):
    """A demo-world scene; a keyframe every second, so a resumed decode seeks cheaply."""
    return str(write_video(path, appearing_square_frames(seconds, appears, color=color), fps=8, gop=8))


@pytest.fixture(scope="module")
def heron(ray_session, redis_url):
    cfg = load_pipeline_config("demo")
    with Heron(cfg, redis_url=redis_url, progress=False, namespace=f"heron-kills-{time.monotonic_ns()}") as service:
        service.warm_up()
        yield service
        service.db.clear_all()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> str:
    """200 s, 100 windows: an ingest takes a few seconds, so a kill lands in the middle of it."""
    return _clip(tmp_path_factory.mktemp("kills") / "long.mp4", 200, [(10, 30), (120, 150)])


@pytest.fixture(scope="module")
def reference(heron, long_clip):
    """The undisturbed ingest of ``long_clip``: its report and every window (index, times, latents)."""
    report = heron.ingest(long_clip)
    windows = _windows(heron, report.source_id)
    heron.latents.clear_source(report.source_id)
    return report, windows


def _windows(heron, source_id: str) -> dict[int, tuple[float, float, np.ndarray]]:
    indices = sorted(heron.latents.cached_indices(source_id))
    return {c.index: (c.t_start, c.t_end, c.latents) for c in heron.latents.get_chunks(source_id, indices)}


def _pid(actor) -> int:
    return get(actor.pid.remote(), timeout_s=WAIT_S)


def _wait_for(ready, what: str, job: _Job | None = None) -> None:
    """Until ``ready()`` holds, polled every 10 ms, for at most WAIT_S; a ``job`` that ends first
    fails the test with its own error (or with ``what`` never having happened)."""
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if job is not None and not job.thread.is_alive():
            job.result()
            raise AssertionError(f"the job finished before {what}")
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_S} s"
        time.sleep(0.01)


def _kill_when(ready, pid: int, what: str, job: _Job | None = None) -> None:
    """SIGKILL ``pid`` as soon as ``ready()`` holds."""
    _wait_for(ready, what, job)
    os.kill(pid, signal.SIGKILL)


class _Job:
    """``work()`` on a thread of its own; ``result()`` waits for it (at most WAIT_S) and raises its error."""

    def __init__(self, work):
        self.out: dict = {}
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work) -> None:
        try:
            self.out["result"] = work()
        except BaseException as error:  # handed to the test, which fails with it
            self.out["error"] = error

    def result(self):
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), f"the job did not finish within {WAIT_S} s"
        if "error" in self.out:
            raise self.out["error"]
        return self.out["result"]


def _assert_same_windows(heron, source_id: str, expected: dict) -> None:
    got = _windows(heron, source_id)
    assert sorted(got) == sorted(expected)  # every index once: none lost, none extra
    for index, (t_start, t_end, latents) in expected.items():
        assert got[index][:2] == (t_start, t_end), index
        np.testing.assert_array_equal(got[index][2], latents, err_msg=f"window {index}")


@pytest.mark.parametrize("kind", ["decode", "encode"])
def test_an_actor_killed_mid_ingest_is_restarted_and_every_window_is_stored_once(heron, long_clip, reference, kind):
    expected_report, expected = reference
    source_id = expected_report.source_id
    heron.latents.clear_source(source_id)
    # The pool keeps the decode actor of the reference ingest; its pid is asked before the ingest
    # (a decode or encode actor serves one call at a time).
    actor = heron._decoders[0] if kind == "decode" else heron.encoders[0]
    pid = _pid(actor)
    job = _Job(lambda: heron.ingest(long_clip))
    _kill_when(lambda: len(heron.latents.cached_indices(source_id)) >= 8, pid, "8 windows stored", job)
    killed_at = len(heron.latents.cached_indices(source_id))
    report = job.result()
    assert 8 <= killed_at < len(expected), "the kill must land mid-ingest"
    assert _pid(actor) != pid  # Ray restarted it
    assert report.windows_encoded == expected_report.windows_encoded == len(expected)  # counted once
    _assert_same_windows(heron, source_id, expected)
    assert heron.latents.source_info(source_id).complete


def test_the_answer_actor_killed_mid_batch_answers_every_question_as_undisturbed(heron, long_clip):
    source_id = heron.ingest(long_clip).source_id
    ranges = [(0.0, 40.0), (100.0, 160.0), (0.0, 200.0), (150.0, 200.0)]
    requests = [
        AnswerRequest.about(question, source_id, start=start, end=end, max_new_tokens=16)
        for question in QUESTIONS
        for start, end in ranges
    ]
    expected = [f.result(timeout=WAIT_S) for f in heron.answer_async(requests)]
    fresh = [dataclasses.replace(r, session_id=f"kill-{i}") for i, r in enumerate(requests)]
    pid = _pid(heron.answerer)
    batches = heron.answer_stats()["batches"]
    futures = heron.answer_async(fresh)
    _kill_when(lambda: heron.answer_stats()["batches"] > batches, pid, "a batch started")
    done_at_kill = sum(f.done() for f in futures)
    answers = [f.result(timeout=WAIT_S) for f in futures]
    assert done_at_kill < len(futures), "the kill must land while answers are in flight"
    assert _pid(heron.answerer) != pid
    assert [(a.text, a.spans) for a in answers] == [(a.text, a.spans) for a in expected]
    for request, answer in zip(fresh, answers):  # one question and one answer per session, not two
        turns = heron.dialogue.get_dialogue(request.session_id)
        assert [(t.role, t.text) for t in turns] == [("user", request.question), ("assistant", answer.text)]


def test_encode_and_answer_actors_killed_mid_batch_run_leave_every_result_once_and_unchanged(heron, tmp_path):
    videos = [
        _clip(tmp_path / "red.mp4", 20, [(0, 20)]),
        _clip(tmp_path / "blue.mp4", 200, [(0, 200)], color=(40, 40, 220)),
        _clip(tmp_path / "green.mp4", 20, [(0, 20)], color=(40, 220, 40)),
    ]
    items = [BatchItem(i * len(QUESTIONS) + j, v, q) for i, v in enumerate(videos) for j, q in enumerate(QUESTIONS)]
    reference = BatchRun(heron, items, job_id="kills-reference").run()
    assert reference.ok and reference.done == len(items)
    expected = _rows(heron, "kills-reference")
    source_ids = {r["video"]: r["source_id"] for r in ResultStore(heron.db).rows("kills-reference")}
    for source_id in source_ids.values():
        heron.latents.clear_source(source_id)  # ingested again, so there is an ingest to disturb
    encode_pid, answer_pid = _pid(heron.encoders[0]), _pid(heron.answerer)
    run = BatchRun(heron, items, job_id="kills-disturbed")
    job = _Job(run.run)
    blue = source_ids[videos[1]]
    _kill_when(lambda: len(heron.latents.cached_indices(blue)) >= 4, encode_pid, "4 windows of blue stored", job)
    assert len(heron.latents.cached_indices(blue)) < 100, "the encode kill must land mid-ingest"
    batches = heron.answer_stats()["batches"]  # (the answer actor serves many calls at once)
    _kill_when(lambda: heron.answer_stats()["batches"] > batches, answer_pid, "an answer batch started", job)
    summary = job.result()
    assert (summary.done, summary.failed, summary.pending, summary.status) == (len(items), 0, 0, "done")
    rows = ResultStore(heron.db).rows("kills-disturbed")
    assert Counter((r["video"], r["question"]) for r in rows) == {(i.video, i.question): 1 for i in items}
    assert _rows(heron, "kills-disturbed") == expected
    assert _pid(heron.encoders[0]) != encode_pid and _pid(heron.answerer) != answer_pid


def _rows(heron, job_id: str) -> dict:
    return {(r["video"], r["question"]): (r["answer"], r["spans"]) for r in ResultStore(heron.db).rows(job_id)}


def test_a_stream_actor_killed_mid_window_resumes_with_every_window_once_and_each_alert_once(heron, tmp_path):
    # tests/live/test_streams.py ends a stream actor through Ray (ray.kill) and checks that indices
    # are contiguous; here its OS process dies half-way through a window, and every window must
    # come back with the times an undisturbed playback gives it, none lost.
    seconds, window_s = 16, 2.0
    scene = write_video(
        tmp_path / "scene.mp4", appearing_square_frames(seconds, [(4.0, 8.0)]), fps=8, gop=8, options={"bf": "0"}
    )
    watch = heron.streams.make_watch(QUESTIONS[1], watch_id="red", cooldown_s=2.0)
    stream = heron.streams.start(str(scene), stream_id="kill-mid-window", realtime=True, watches=[watch])
    actor = heron.streams._actors[stream]
    pid = _pid(actor)
    _wait_for(lambda: (heron.latents.last_window(stream) or (-1,))[0] >= 2, "window 2 stored")
    time.sleep(window_s / 2)  # half of window 3 read: frames in the actor's memory, not in Redis
    killed_after = heron.latents.last_window(stream)[0]
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: heron.streams.status(stream)["status"] in ("ended", "failed"), "the stream ended")
    assert heron.streams.status(stream)["status"] == "ended"
    assert _pid(actor) != pid
    windows = heron.latents.window_spans(stream, 0, 1e9)
    # an undisturbed playback of this 8 fps file: window i holds pts 2i ... 2i + 1.875
    assert windows == [(i, i * window_s, i * window_s + 1.875) for i in range(int(seconds / window_s))]
    assert killed_after < len(windows) - 1, "the kill must land mid-stream"
    alerts = [(a.data["kind"], a.data["event"]) for a in heron.alerts.list_alerts(stream)]
    assert alerts == [("open", 1), ("close", 1)]
    assert not [g for g in heron.streams.store.gaps(stream) if "lost" in g["reason"] or "skipped" in g["reason"]]
    heron.streams.stop(stream)


def test_with_ray_retries_off_the_ingest_itself_sends_lost_calls_again(heron, long_clip, reference, tmp_path):
    # max_task_retries: 0 (a setting a deployment may choose): Ray fails the calls in flight with
    # ActorUnavailableError, and the ingest sends them again, resuming each decode at its offset.
    # Last in this module: it restarts the Heron's actors with other settings.
    expected_report, expected = reference
    source_id = expected_report.source_id
    heron.cfg.ingest.decode = dataclasses.replace(heron.cfg.ingest.decode, max_task_retries=0)
    heron.cfg.ingest.encode = dataclasses.replace(heron.cfg.ingest.encode, max_task_retries=0)
    heron.close()  # the next calls start fresh actors with these settings
    heron.ingest(_clip(tmp_path / "warm.mp4", 4, [(0, 4)]))  # starts them (the decode actor stays pooled)
    heron.latents.clear_source(source_id)
    decode_pid, encode_pid = _pid(heron._decoders[0]), _pid(heron.encoders[0])
    job = _Job(lambda: heron.ingest(long_clip))
    _kill_when(lambda: len(heron.latents.cached_indices(source_id)) >= 8, decode_pid, "8 windows stored", job)
    _kill_when(lambda: len(heron.latents.cached_indices(source_id)) >= 40, encode_pid, "40 windows stored", job)
    assert len(heron.latents.cached_indices(source_id)) < len(expected), "the kills must land mid-ingest"
    report = job.result()
    assert report.windows_encoded == len(expected)
    _assert_same_windows(heron, source_id, expected)


def test_a_decode_actor_resumes_a_run_at_the_offset_each_call_names(long_clip):
    # Without Ray: what a restarted actor (a fresh instance) does with a retried call.
    from heron.actors import DecodeActor, DecodeRun
    from heron.pipeline.sources import content_id

    cfg = load_pipeline_config("demo").decode
    run = DecodeRun(long_clip, content_id(long_clip), 10.0, 60.0)  # windows 5 ... 29
    whole = DecodeActor(cfg)
    undisturbed = [b for offset in range(0, 28, 4) for b in whole.next(run, 4, offset)]
    assert [b.index for b in undisturbed] == list(range(5, 30))
    assert whole.next(run, 4, 28) == [] and whole.finish(run)["frames_kept"] == 25 * 16  # past the end
    restarted = DecodeActor(cfg)
    resumed = restarted.next(run, 4, 12) + restarted.next(run, 4, 16)  # seeks to window 5 + 12
    assert [(b.index, list(b.pts)) for b in resumed] == [(b.index, list(b.pts)) for b in undisturbed[12:20]]
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(resumed, undisturbed[12:20]))
    assert DecodeActor(cfg).next(run, 4, 28) == []  # a retried call past the run's end
    again = restarted.next(run, 4, 12)  # a call sent again on a live actor
    assert [b.index for b in again] == [b.index for b in undisturbed[12:16]]
