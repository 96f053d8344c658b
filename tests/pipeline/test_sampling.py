"""The sampling rule on timestamps as containers give them (float32-rounded, jittered)."""

from __future__ import annotations

import numpy as np

from heron.pipeline.decode import FrameSampler


def _kept(times, fps, start=None, end=None) -> list[float]:
    sampler = FrameSampler(fps, start, end)
    return [t for t in times if sampler.keep(float(t))]


def test_float32_timestamps_keep_one_frame_per_sample_time():
    """25 fps frames sampled at 12.5 fps keep every other frame, even where float32 puts a frame
    meant for 3.12 s at 3.1199999 s (the rounding must not shift the next sample time back)."""
    times = (np.arange(150) / 25).astype(np.float32).astype(np.float64)
    kept = _kept(times, 12.5)
    assert len(kept) == 75
    assert np.allclose(np.diff(kept), 0.08, atol=1e-5)


def test_a_frame_exactly_on_a_sample_time_is_kept_once():
    assert _kept([0.0, 0.5, 0.5, 1.0, 1.5], 2.0) == [0.0, 0.5, 1.0, 1.5]


def test_gaps_keep_fewer_frames_rather_than_repeating_one():
    assert _kept([0.0, 0.1, 2.05, 2.1, 3.0], 2.0) == [0.0, 2.05, 3.0]


def test_start_and_end_bound_the_samples():
    times = np.arange(0, 10, 0.25)
    assert _kept(times, 1.0, start=2.0, end=5.0) == [2.0, 3.0, 4.0]


def test_output_size_keeps_aspect_up_to_4_to_1_then_squeezes():
    from heron.pipeline.decode.sampling import output_size

    assert output_size(640, 360, 224) == (224, 398)  # aspect kept, both even
    assert output_size(1000, 10, 224) == (224, 896)  # a strip would be 22,400 px wide: capped at 4 x 224
    assert output_size(16, 600, 112) == (448, 112)
    assert output_size(1000, 10, (64, 96)) == (64, 96)  # an exact size is exact
