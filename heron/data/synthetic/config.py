"""Configuration, closed vocabularies and typed errors of the synthetic video QA generator.

Every word a question or answer can contain is defined here, so the tiny language model's
vocabulary is known up front (docs/data.md lists it per category).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from heron.errors import ConfigError, HeronError

# Clearly distinct RGB colours; the names are the colour answers. Kept far apart in RGB (and in
# YUV, since H.264 stores 4:2:0 chroma) so a compressed frame still shows the right colour.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 220, 40),
    "white": (240, 240, 240),
    "purple": (160, 60, 200),
}
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
# Image convention: x grows to the right, y grows downwards, so "up" is -y.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six")
CATEGORIES: tuple[str, ...] = ("attribute", "counting", "motion", "temporal_order", "presence")
MOMENTS: tuple[str, ...] = ("start", "end")  # "start" = the first frame, "end" = the last frame
SPLITS: tuple[str, ...] = ("train", "val", "test")


class SyntheticConfigError(ConfigError):
    """A synthetic-data argument is invalid (clip size, frame count, split, object counts...)."""


class SceneSamplingError(HeronError, RuntimeError):
    """No valid scene (objects apart, timings usable) was found: the config is too crowded."""

    def __init__(self, attempts: int, size: int, max_objects: int):
        self.attempts, self.size, self.max_objects = attempts, size, max_objects
        super().__init__(
            f"no valid scene with up to {max_objects} objects on a {size}x{size} canvas after "
            f"{attempts} attempts; raise size, lower max_objects or shrink object_size"
        )


@dataclass(frozen=True)
class ClipConfig:
    """How one synthetic clip looks. Fractions are of the frame side or of the clip length."""

    size: int = 96  # frame height = width in pixels; even because H.264 4:2:0 halves the chroma
    num_frames: int = 16  # frames per clip; 16 at 8 fps is a 2 s clip
    fps: float = 8.0  # frame rate written to the mp4; every time in the metadata is frame / fps
    min_objects: int = 1  # fewest objects in a clip (counting answers start here)
    max_objects: int = 3  # most objects; at most the number of shapes so every shape is unique
    colors: tuple[str, ...] = tuple(PALETTE)  # colour names (PALETTE keys) objects are drawn from
    shapes: tuple[str, ...] = SHAPES  # shapes objects are drawn from
    object_size: tuple[float, float] = (0.16, 0.24)  # side / diameter range, fraction of size
    # Distance moved while visible, fraction of size: a distance rather than a speed, so even a
    # short-lived object moves far enough for its direction to be plain.
    travel: tuple[float, float] = (0.2, 0.45)
    min_visible: float = 0.375  # shortest time on screen, fraction of the clip (6 of 16 frames)
    # A temporal-order pair's appear times, and its disappear times, differ by at least this
    # fraction of the clip: each of the two is on screen without the other that long.
    temporal_gap: float = 0.25
    # Chance an object is there from the first frame; otherwise its appear frame is uniform over
    # [0, num_frames - min_visible_frames]. These two are the timings before the coin flip that
    # plays half the scenes backwards, which makes starts and ends alike (scene.reverse_in_time).
    p_from_start: float = 0.35
    p_until_end: float = 0.6  # chance an object stays until the last frame
    margin: int = 2  # pixels kept free between objects and around the frame edge
    background: tuple[int, int, int] = (16, 16, 16)  # plain dark RGB background

    def __post_init__(self) -> None:
        if self.size % 2 or not 32 <= self.size <= 512:
            raise SyntheticConfigError(f"size must be an even number in [32, 512], got {self.size}")
        if not 8 <= self.num_frames <= 128:
            raise SyntheticConfigError(f"num_frames must be in [8, 128], got {self.num_frames}")
        if not self.fps > 0:
            raise SyntheticConfigError(f"fps must be positive, got {self.fps}")
        vocabularies = (("colors", self.colors, PALETTE), ("shapes", self.shapes, SHAPES))
        for field, names, known in vocabularies:
            if any(name not in known for name in names) or len(set(names)) != len(names):
                raise SyntheticConfigError(f"{field} must be distinct names from {list(known)}, got {list(names)}")
        most = min(len(self.colors), len(self.shapes), len(NUMBER_WORDS) - 1)
        if not 1 <= self.min_objects <= self.max_objects <= most:
            raise SyntheticConfigError(
                f"need 1 <= min_objects <= max_objects <= {most} (each object has its own colour"
                f" and shape), got min_objects={self.min_objects}, max_objects={self.max_objects}"
            )
        self._check_geometry()

    def _check_geometry(self) -> None:
        (small, big), (near, far) = self.object_size, self.travel
        fits = big + far + 4 * self.margin / self.size <= 1
        if not (0 < small <= big and 0 < near <= far and fits):
            raise SyntheticConfigError(
                f"object_size {self.object_size} and travel {self.travel} must be increasing "
                "positive ranges whose largest object and travel fit in the frame together"
            )
        gap = self.temporal_gap_frames
        if self.min_visible_frames + gap > self.num_frames or 2 * gap + 1 > self.num_frames:
            raise SyntheticConfigError(
                f"min_visible ({self.min_visible_frames} frames) + temporal_gap ({gap} frames), "
                f"and twice temporal_gap + 1, must fit in num_frames={self.num_frames} (a "
                "temporal-order pair shows the first object alone, both, then the second alone)"
            )

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return self.num_frames / self.fps

    @property
    def min_visible_frames(self) -> int:
        """Shortest visible span in frames; at least 2 so every object visibly moves."""
        return max(2, math.ceil(self.min_visible * self.num_frames))

    @property
    def temporal_gap_frames(self) -> int:
        """Smallest appear-frame difference of the two objects a temporal-order question names."""
        return max(1, math.ceil(self.temporal_gap * self.num_frames))

    @property
    def count_words(self) -> tuple[str, ...]:
        """Counting answers, in order: number words from min_objects to max_objects."""
        return NUMBER_WORDS[self.min_objects : self.max_objects + 1]
