"""Draw a scene into uint8 RGB frames, and the one-call ``generate_clip``."""

from __future__ import annotations

import numpy as np

from heron.data.synthetic.config import PALETTE, ClipConfig
from heron.data.synthetic.scene import ClipMetadata, ClipObject, sample_clip

Grid = tuple[np.ndarray, np.ndarray]  # pixel coordinates: x [1, W], y [H, 1]


def shape_mask(shape: str, center: tuple[float, float], size: float, grid: Grid) -> np.ndarray:
    """Boolean [H, W] mask of a filled shape of ``size`` px centred at ``center`` (x, y) px.

    Hard edges on purpose: every object pixel has exactly its palette colour before encoding,
    which keeps the frames-vs-answers checks exact.
    """
    x, y = grid
    cx, cy = center
    half = size / 2
    if shape == "square":
        return (np.abs(x - cx) < half) & (np.abs(y - cy) < half)
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 < half**2
    if shape == "triangle":  # apex up; width grows from 0 at the apex to `size` at the base
        top = cy - half
        return (y >= top) & (y < cy + half) & (np.abs(x - cx) < (y - top) / 2)
    raise ValueError(f"unknown shape {shape!r}")


def render_clip(meta: ClipMetadata) -> np.ndarray:
    """Frames uint8 [T, H, W, 3] (RGB) of the scene: shapes on a plain dark background."""
    cfg = meta.config
    frames = np.empty((cfg.num_frames, cfg.size, cfg.size, 3), dtype=np.uint8)
    frames[:] = cfg.background
    coords = np.arange(cfg.size, dtype=np.float32)
    grid = (coords[None, :], coords[:, None])
    for obj in meta.objects:
        _draw(frames, obj, grid)
    return frames


def _draw(frames: np.ndarray, obj: ClipObject, grid: Grid) -> None:
    color = np.asarray(PALETTE[obj.color], dtype=np.uint8)
    for t in range(obj.appear_frame, obj.disappear_frame):
        frames[t][shape_mask(obj.shape, obj.center(t), obj.size, grid)] = color


def generate_clip(rng: np.random.Generator, cfg: ClipConfig | None = None) -> tuple[np.ndarray, ClipMetadata]:
    """Sample a scene from ``rng`` and render it: (frames uint8 [T, H, W, 3], metadata)."""
    meta = sample_clip(rng, cfg if cfg is not None else ClipConfig())
    return render_clip(meta), meta
