"""Live-stream fixtures: scenes in the demo model's world, and real servers on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from heron.data.scenes import appearing_square_frames
from heron.data.video_writer import write_video

LIVE_ENCODING = {"bf": "0"}  # no B-frames, as cameras send


def scene(path: Path, seconds: float, appears: list[tuple[float, float]], **kw) -> Path:
    """A demo-world scene (dark, 96 px, 8 fps) with a red square on screen during ``appears``; a
    keyframe every second so a reader joins fast."""
    return write_video(path, appearing_square_frames(seconds, appears, **kw), fps=8, gop=8, options=LIVE_ENCODING)


@pytest.fixture(scope="session")
def appear_scene(tmp_path_factory) -> Path:
    """12 s: a red square on screen from 4 s to 8 s."""
    return scene(tmp_path_factory.mktemp("live") / "appear.mp4", 12, [(4.0, 8.0)])


@pytest.fixture(scope="session")
def empty_scene(tmp_path_factory) -> Path:
    """12 s of the same dark frame, no object."""
    return scene(tmp_path_factory.mktemp("live") / "empty.mp4", 12, [])


def servers_or_skip():
    """tools/live/servers.py, or a skip naming what is missing (only when the system tools are absent)."""
    from tools.live import servers

    return servers


def start_or_skip(make):
    from tools.live import servers

    try:
        return make()
    except servers.ToolsMissing as missing:
        pytest.skip(f"live-stream server tools are missing ({missing}); run tools/setup_system.sh")
