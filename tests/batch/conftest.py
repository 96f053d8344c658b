"""Batch fixtures: a small archive in the demo model's world (some files broken), a warm Heron."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from heron.data.scenes import appearing_square_frames
from heron.data.video_writer import write_video

QUESTIONS = ["What color is the square?", "Is there a red square at the end of the video?"]
COLOURS = {"red": (220, 40, 40), "green": (40, 220, 40), "blue": (40, 40, 220)}
BROKEN = {"notes.mp4": "NotAVideoError", "empty.mp4": "NotAVideoError", "cut.mp4": "CorruptVideoError"}


def make_archive(root: Path, copies: int = 2, seconds: float = 2.0) -> dict[str, str]:
    """``copies`` x 3 short clips (``seconds`` s and 1 s more for each copy, one coloured square
    each, in sub-folders) and three broken files; returns video path -> its square's colour (or
    the error type a broken file must give). Another ``seconds`` gives other content (no cache hits)."""
    truth = {}
    for n in range(copies):
        for colour, rgb in COLOURS.items():
            path = root / f"cam{n}" / f"{colour}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            frames = appearing_square_frames(seconds + n, [(0.0, seconds + n)], color=rgb)
            truth[str(write_video(path, frames, fps=8, gop=8))] = colour
    (root / "notes.mp4").write_text("a text file that only looks like a video by name\n" * 20)
    (root / "empty.mp4").write_bytes(b"")
    whole = (root / "cam0" / "red.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(whole[: len(whole) // 3])  # the index (moov) is at the end: gone
    truth |= {str(root / name): error for name, error in BROKEN.items()}
    return truth


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("archive")
    return root, make_archive(root)


@pytest.fixture(scope="module")
def heron(ray_session, redis_url):
    from heron.config import load_pipeline_config
    from heron.service import Heron

    cfg = load_pipeline_config("demo")
    cfg.ingest = dataclasses.replace(cfg.ingest, parallel_ingests=2)
    with Heron(cfg, redis_url=redis_url, progress=False, namespace=f"heron-batch-{time.monotonic_ns()}") as service:
        yield service
        service.db.clear_all()
