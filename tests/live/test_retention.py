"""Retention: an hour of stream, fed faster than real time, keeps Redis memory flat past the horizon."""

from __future__ import annotations

import time

import pytest
import redis

from heron.config import load_pipeline_config
from heron.data.video_writer import write_video
from heron.pipeline.live import LiveSpec
from heron.service import Heron
from heron.state import ThrowawayRedis
from tests.media import moving_square_frames

pytestmark = pytest.mark.integration


def test_an_hour_of_stream_keeps_memory_flat_after_the_horizon(ray_session, tmp_path):
    hour = moving_square_frames(seconds=3600, fps=1, height=32, width=32)
    video = write_video(tmp_path / "hour.mp4", hour, fps=1, gop=30)
    cfg = load_pipeline_config("tiny")  # 1 fps, 4-frame windows
    cfg.live.retention_s = 240.0  # 60 windows kept
    with ThrowawayRedis() as server, Heron(cfg, redis_url=server.url, progress=False) as heron:
        client = redis.Redis.from_url(server.url)
        stream = heron.streams.start(LiveSpec(str(video), "file"), stream_id="hour")  # as fast as it decodes
        samples, deadline = [], time.monotonic() + 240
        while True:
            status = heron.streams.status(stream)
            if status["windows"] >= 120:  # past the horizon: memory should stop growing
                samples.append((status["windows"], client.info("memory")["used_memory"]))
            if status["status"] in ("ended", "failed"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        cached = heron.latents.cached_indices(stream)
    assert status["status"] == "ended" and status["windows"] == 900 and status["skipped_windows"] == 0
    assert 55 <= len(cached) <= 62 and max(cached) == 899  # only the last 240 s are kept
    memory = [m for _, m in samples]
    assert len(memory) >= 5 and max(memory) - min(memory) < 0.15 * min(memory), samples
