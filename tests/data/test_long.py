"""Long synthetic videos: events where the metadata says, questions that match them, files that decode."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from heron.data.synthetic import PALETTE, ClipConfig, SyntheticConfigError
from heron.data.synthetic.long import LongConfig, generate_long_dataset, long_questions, sample_long_video
from heron.text import ORDINALS

CFG = LongConfig(duration_s=(40.0, 60.0), events=(3, 5), clip=ClipConfig(size=48, fps=8.0))


@pytest.mark.parametrize("seed", range(5))
def test_events_are_distinct_apart_and_drawn_only_while_they_last(seed):
    video = sample_long_video(np.random.default_rng(seed), CFG)
    fps, events = video.fps, video.events
    assert 3 <= len(events) <= 5 and 40.0 <= video.duration <= 60.0
    assert len({(e.obj.color, e.obj.shape) for e in events}) == len(events)
    assert len({e.obj.color for e in events}) == len(events)
    for earlier, later in zip(events, events[1:]):
        assert later.start_s(fps) - earlier.end_s(fps) >= CFG.min_gap_s - 1e-9
    frames = np.concatenate(list(video.frames(chunk=97)))  # [T, H, W, 3], chunking is invisible
    assert len(frames) == video.num_frames
    background = np.all(frames == np.asarray(CFG.clip.background, dtype=np.uint8), axis=-1)  # [T, H, W]
    shown = ~background.all(axis=(1, 2))
    inside = np.zeros(video.num_frames, dtype=bool)
    for e in events:
        inside[e.start_frame : e.start_frame + e.obj.disappear_frame] = True
        middle = frames[e.start_frame + e.obj.disappear_frame // 2]
        assert np.all(middle == np.asarray(PALETTE[e.obj.color], dtype=np.uint8), axis=-1).any()
    assert np.array_equal(shown, inside)


def test_questions_are_answered_by_the_events_they_cite():
    video = sample_long_video(np.random.default_rng(3), CFG)
    events, fps = video.events, video.fps
    by_name = {e.obj.name: e for e in events}
    questions = long_questions(video, np.random.default_rng(0))
    categories = {q["category"] for q in questions}
    assert {"long_presence", "long_when", "long_count"} <= categories
    for q in questions:
        assert q["answer"] in q["choices"] or q["category"] == "long_when"
        if q["category"] == "long_count":
            assert len(q["evidence"]) == len(events)
        elif q["category"] == "long_order":
            first, second = (
                by_name[n] for n in q["question"][len("Which appeared first, the ") : -1].split(" or the ")
            )
            earlier = first if first.start_frame < second.start_frame else second
            assert q["answer"] == earlier.obj.shape
        elif q["category"] == "long_when":
            event = by_name[q["question"][len("When does the ") : -len(" appear?")]]
            assert q["evidence"] == [[round(event.start_s(fps), 4), round(event.end_s(fps), 4)]]
            window = int(event.start_s(fps) // CFG.window_s)
            assert q["answer"] == (ORDINALS[window] if window < len(ORDINALS) else f"{event.start_s(fps):.1f} s")
        elif q["category"] == "long_presence" and q["answer"] == "no":
            assert q["evidence"] == [] and q["question"][len("Is there a ") : -len(" in the video?")] not in by_name


def test_a_dataset_is_deterministic_and_its_videos_decode_to_their_length(tmp_path):
    cfg = LongConfig(duration_s=(20.0, 20.0), events=(2, 2), clip=ClipConfig(size=48, fps=8.0))
    first = generate_long_dataset(tmp_path / "a", 2, seed=7, cfg=cfg)
    second = generate_long_dataset(tmp_path / "b", 2, seed=7, cfg=cfg)
    assert first.read_text() == second.read_text()
    other = generate_long_dataset(tmp_path / "c", 2, seed=7, split="val", cfg=cfg)
    assert other.read_text() != first.read_text()
    record = json.loads(first.read_text().splitlines()[0])
    with av.open(str(first.parent / record["video"])) as container:
        assert sum(1 for _ in container.decode(video=0)) == 160  # 20 s at 8 fps


def test_events_that_cannot_fit_are_a_clear_error():
    with pytest.raises(SyntheticConfigError, match="do not fit"):
        LongConfig(duration_s=(4.0, 4.0), events=(3, 3))
    with pytest.raises(SyntheticConfigError, match="increasing"):
        LongConfig(duration_s=(60.0, 30.0))
