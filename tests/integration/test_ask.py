"""`heron ask` end to end: real Ray actors (decode → encode → answer), a real Redis, the tiny model."""

from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pytest

from heron.config import DecodeConfig, load_pipeline_config
from heron.errors import ClusterResourcesError, EmptyQuestionError, SourceNotFoundError, TimeRangeError
from heron.service import Heron

pytestmark = pytest.mark.integration


@pytest.fixture
def heron(ray_session, redis_url, namespace):
    cfg = load_pipeline_config("tiny")  # 1 fps, 4-frame windows, tiny model
    service = Heron(cfg, redis_url=redis_url, progress=False, namespace=namespace)  # private keys per test
    yield service
    service.close()
    service.db.clear_all()


def test_ask_runs_the_whole_pipeline_and_caches_windows(heron, sample_video):
    result = heron.ask(sample_video, "What moves across the frame?")
    ingest, answer = result.ingest, result.answer
    assert not ingest.cached and ingest.decoder.startswith("decord")
    assert ingest.frames_sampled == 10 and ingest.windows_encoded == 3  # 10 s at 1 fps in windows of 4
    assert isinstance(answer.text, str) and answer.windows_used == 3
    assert answer.spans == [(0.0, 3.0), (4.0, 7.0), (8.0, 9.0)]
    chunks = heron.latents.chunks_in_range(ingest.source_id, 0, 10)
    assert [c.index for c in chunks] == [0, 1, 2]
    assert chunks[0].latents.shape == (4, 32) and str(chunks[0].latents.dtype) == "float16"
    info = heron.latents.source_info(ingest.source_id)
    assert info.complete and info.cached_windows == 3 and math.isclose(info.duration_s, 10.0, abs_tol=0.2)
    turns = heron.dialogue.get_dialogue(answer.session_id)
    assert [t.role for t in turns] == ["user", "assistant"] and turns[1].text == answer.text
    assert turns[1].meta["spans"] == [list(s) for s in answer.spans]


def test_second_question_decodes_and_encodes_nothing_until_cleared(heron, sample_video):
    first = heron.ask(sample_video, "What colour is the square?")
    assert heron.encoder_counters() == [{"calls": 1, "windows_encoded": 3}]
    second = heron.ask(sample_video, "Where does it go?", session_id=first.answer.session_id)
    assert second.ingest.cached and second.ingest.frames_decoded == 0 and second.ingest.windows_encoded == 0
    assert heron.encoder_counters() == [{"calls": 1, "windows_encoded": 3}]  # not called again
    assert len(heron.dialogue.get_dialogue(first.answer.session_id)) == 4  # the follow-up joined the dialogue

    heron.latents.clear_source(first.ingest.source_id)
    third = heron.ask(sample_video, "And now?")
    assert not third.ingest.cached and third.ingest.windows_encoded == 3
    assert heron.encoder_counters() == [{"calls": 2, "windows_encoded": 6}]


def test_time_range_uses_only_its_windows_and_is_cached_by_content(heron, sample_video, tmp_path):
    result = heron.ask(sample_video, "What happens here?", start=4.5, end=7.0)
    assert result.answer.spans == [(4.0, 7.0)]  # aligned down to the window grid
    assert result.ingest.windows_encoded == 1
    copy = tmp_path / "copy.mp4"
    shutil.copy(sample_video, copy)  # same bytes, other path: same content id, cache hit
    again = heron.ask(str(copy), "And here?", start=4.0, end=6.0)
    assert again.ingest.cached and again.answer.spans == [(4.0, 7.0)]
    whole = heron.ask(sample_video, "And overall?")  # the range did not mark the source complete
    assert not whole.ingest.cached and whole.answer.windows_used == 3
    # a range ending on a window edge leaves out the window starting there, cached or not
    edge = heron.ask(sample_video, "And at first?", start=0.0, end=4.0)
    assert edge.ingest.cached and edge.answer.spans == [(0.0, 3.0)]


def test_bad_input_is_rejected_before_any_work(heron, tmp_path, sample_video):
    with pytest.raises(EmptyQuestionError):
        heron.ask(sample_video, "   ")
    with pytest.raises(SourceNotFoundError):
        heron.ask(str(tmp_path / "missing.mp4"), "What?")
    with pytest.raises(TimeRangeError):
        heron.ask(sample_video, "What?", start=8, end=2)
    assert heron._encoders == [] and heron._answerer is None  # nothing was started


def test_a_gpu_actor_on_a_cluster_without_gpus_fails_at_once_naming_the_setting(ray_session, redis_url, sample_video):
    cfg = load_pipeline_config("tiny")
    cfg.ingest.encode.num_gpus = 1  # a GPU preset on this CPU-only Ray: Ray alone would queue it forever
    with Heron(cfg, redis_url=redis_url, progress=False) as heron:
        with pytest.raises(
            ClusterResourcesError, match=r"need 1 GPU at once \(1 x pipeline\.ingest\.encode \(1 each\)\).* has 0 GPU"
        ):
            heron.ask(sample_video, "What moves?")
        assert heron._encoders == [] and heron._decoders == []


def test_more_decode_actors_than_the_cores_hold_fail_before_any_decoding(heron, sample_video):
    heron.cfg.ingest.decode_actors = 3  # 3 windows: 3 actors of 1 CPU, beside the 0.5-CPU encoder, on 2 CPUs
    heron.cfg.ingest.decode.num_cpus = 1.0
    with pytest.raises(
        ClusterResourcesError,
        match=r"need 3\.5 CPU at once \(1 x pipeline\.ingest\.encode \(0\.5 each\), "
        r"3 x pipeline\.ingest\.decode \(1 each\)\)",
    ):
        heron.ingest(sample_video)
    heron.cfg.ingest.decode.num_cpus = 0.25  # 0.5 + 3 x 0.25 fits
    assert heron.ingest(sample_video).decode_actors == 3
    # The pool stays: an answer actor needing more than the 0.75 CPU left would wait forever.
    heron.cfg.answer.actor.num_cpus = 1.0
    with pytest.raises(ClusterResourcesError, match=r"need 2\.25 CPU at once .*1 x pipeline\.answer\.actor \(1 each\)"):
        heron.ask(sample_video, "What moves?")  # cached: only the answer actor would start
    assert heron._answerer is None


@pytest.mark.parametrize("decode_actors", [1, 3])
def test_video_corrupt_part_way_answers_over_what_decoded(heron, tmp_path, caplog, decode_actors):
    from heron.data.video_writer import write_video

    # With 3 actors the later runs start past the break: the source ends there, as with one.
    heron.cfg.ingest.decode_actors, heron.cfg.ingest.decode.num_cpus = decode_actors, 0.25

    rng = np.random.default_rng(5)
    path = write_video(tmp_path / "noisy.webm", rng.integers(0, 256, (80, 48, 64, 3), dtype=np.uint8), fps=8)
    data = path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])  # Matroska: the first half still plays
    with caplog.at_level(logging.WARNING, logger="heron.service.heron"):
        result = heron.ask(str(cut), "What is there?")
    truncated = result.ingest.truncated_at
    assert truncated is not None and 2.0 < truncated < 8.0 and result.ingest.decode_actors == decode_actors
    assert f"decoded {truncated:.1f} s of 10.0 s" in caplog.text
    assert result.answer.spans and result.answer.spans[-1][1] <= truncated


def test_ask_about_a_url_with_a_time_range(heron, tmp_path):
    """http(s) sources go through PyAV; the content id of a URL is its address."""
    import functools
    import http.server
    import threading

    from heron.data.video_writer import write_video
    from tests.media import moving_square_frames

    write_video(tmp_path / "clip.webm", moving_square_frames(seconds=8), fps=8)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=tmp_path))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.webm"
        result = heron.ask(url, "How many squares enter?", start=2, end=6)
    finally:
        server.shutdown()
        server.server_close()
    assert result.ingest.decoder == "pyav" and result.ingest.windows_encoded == 2
    assert result.answer.spans == [(0.0, 3.0), (4.0, 7.0)]


def test_decode_actors_split_a_file_on_the_window_grid(heron, sample_video):
    from heron.pipeline.decode import VideoDecoder

    probe = VideoDecoder(sample_video, heron.cfg.decode)  # 10 s, 4-s windows: indices 0, 1, 2
    heron.cfg.ingest.decode_actors = 3
    assert heron._segments(None, None, probe, seekable=True) == [(None, 4.0), (4.0, 8.0), (8.0, None)]
    assert heron._segments(4.5, None, probe, seekable=True) == [(4.5, 8.0), (8.0, None)]  # 2 windows, 2 actors
    assert heron._segments(0.0, 7.0, probe, seekable=True) == [(0.0, 4.0), (4.0, 7.0)]
    assert heron._segments(None, None, probe, seekable=False) == [(None, None)]  # a URL: one reader
    heron.cfg.ingest.decode_actors = 1
    assert heron._segments(None, None, probe, seekable=True) == [(None, None)]


def test_parallel_decode_actors_cache_the_same_windows_as_one(heron, sample_video):
    one = heron.ingest(sample_video)
    single = {c.index: c for c in heron.latents.chunks_in_range(one.source_id, 0, 10)}
    heron.latents.clear_source(one.source_id)
    heron.cfg.ingest.decode_actors, heron.cfg.ingest.max_in_flight = 3, 3
    three = heron.ingest(sample_video)
    assert not three.cached and three.windows_encoded == 3 and (one.decode_actors, three.decode_actors) == (1, 3)
    assert "3 actors" in three.summary()
    assert (three.frames_sampled, three.frames_decoded > 0) == (one.frames_sampled, True) == (10, True)
    parallel = {c.index: c for c in heron.latents.chunks_in_range(three.source_id, 0, 10)}
    assert sorted(parallel) == sorted(single) == [0, 1, 2]
    for index, chunk in single.items():
        assert (parallel[index].t_start, parallel[index].t_end) == (chunk.t_start, chunk.t_end)
        np.testing.assert_array_equal(parallel[index].latents, chunk.latents)
    assert heron.latents.source_info(three.source_id).complete


def test_decode_actors_are_kept_across_ingests_and_reopen_their_run_after_a_restart(heron, sample_video, tmp_path):
    import ray

    from heron.data.video_writer import write_video

    other = write_video(
        tmp_path / "other.mp4", np.random.default_rng(3).integers(0, 256, (24, 48, 64, 3), dtype=np.uint8), fps=8
    )
    first = heron.ingest(sample_video)
    pool = [actor._actor_id for actor in heron._decoders]
    assert len(pool) == 1
    assert heron.ingest(str(other)).windows_encoded == 1  # 3 s: one window, by the same actor
    assert [actor._actor_id for actor in heron._decoders] == pool

    ray.kill(heron._decoders[0], no_restart=False)  # Ray restarts it with only its constructor
    heron.latents.clear_source(first.source_id)
    again = heron.ingest(sample_video)
    assert not again.cached and again.windows_encoded == 3 and again.frames_sampled == 10
    assert [actor._actor_id for actor in heron._decoders] == pool


def test_concurrent_first_questions_start_one_answer_actor(heron, sample_video):
    import threading

    heron.ingest(sample_video)  # cached: the questions below only need the answer actor
    barrier, handles, errors = threading.Barrier(6), [], []

    def ask():
        try:
            barrier.wait(timeout=30)
            result = heron.ask(sample_video, "What moves?")
            handles.append(heron._answerer._actor_id)
            assert result.ingest.cached
        except Exception as error:  # collected: an assert in a thread would vanish
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(handles) == 6 and len(set(handles)) == 1


def test_a_fully_cached_range_is_recognised_whatever_the_float_rounding(ray_session, redis_url, namespace, tmp_path):
    """fps 12.5 and 8-frame windows: --to 4.48 ends exactly on window 7's start (4.48 / 0.64 =
    7.000000000000001). The range must count as cached the second time, not be decoded again."""
    from heron.data.video_writer import write_video
    from tests.media import moving_square_frames

    cfg = load_pipeline_config("tiny")
    cfg.decode = DecodeConfig(fps=12.5, window_frames=8, size=64)
    video = write_video(tmp_path / "v.mp4", moving_square_frames(seconds=6, fps=25), fps=25)
    with Heron(cfg, redis_url=redis_url, progress=False, namespace=namespace) as heron:
        first = heron.ingest(str(video), end=4.48)
        again = heron.ingest(str(video), end=4.48)
        heron.db.clear_all()
    assert not first.cached and first.windows_encoded == 7
    assert again.cached and again.windows_cached == 7
