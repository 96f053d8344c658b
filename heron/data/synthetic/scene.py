"""Scene metadata (objects, timings, motion) and its rejection sampler.

A scene is sampled from a ``numpy.random.Generator`` only, so one seed gives one scene. Constraints
that make every question answerable are enforced by resampling, which keeps colours, shapes and
directions independent of timing and position (no answer leaks through a prior):
  * objects never overlap (their boxes stay ``margin`` apart) and never leave the frame;
  * some object is visible in the first or the last frame (a "presence" question can be "yes");
  * with two or more objects, some pair forms a "staircase" ("temporal_order" always has a
    question): A appears, B appears, A disappears, B stays; each is alone (without the other)
    for at least ``temporal_gap_frames`` and they share at least one frame.

Temporal order is knowable only from frame order: every sampled scene is played backwards with
probability 1/2 (``reverse_in_time``), so the scene distribution is invariant under time reversal.
A clip and its reversal have the same *set* of frames but opposite temporal-order answers (the
staircase of A then B reversed is a staircase of B then A), so any answerer that sees the frames
without their order is exactly at chance on temporal-order questions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from heron.data.synthetic.config import DIRECTIONS, ClipConfig, SceneSamplingError

MAX_ATTEMPTS = 1000  # whole-scene resamples before giving up; valid configs need a handful
PLACE_TRIES = 50  # start points tried per object before the whole scene is resampled
_OPPOSITE = {name: next(k for k, v in DIRECTIONS.items() if v == (-dx, -dy)) for name, (dx, dy) in DIRECTIONS.items()}


@dataclass(frozen=True)
class ClipObject:
    """One coloured shape. Visible on frames ``appear_frame <= t < disappear_frame``."""

    color: str  # colour name (key of PALETTE), unique within the clip
    shape: str  # "square" | "circle" | "triangle", unique within the clip
    size: float  # side of the square / diameter of the circle / base = height of the triangle, px
    appear_frame: int  # first visible frame
    disappear_frame: int  # first frame no longer visible; num_frames = stays until the end
    direction: str  # "left" | "right" | "up" | "down"
    start: tuple[float, float]  # centre (x, y) in px at appear_frame; x right, y down
    velocity: tuple[float, float]  # px per frame

    @property
    def name(self) -> str:
        """How questions and captions refer to it: "red square"."""
        return f"{self.color} {self.shape}"

    def visible(self, frame: int) -> bool:
        return self.appear_frame <= frame < self.disappear_frame

    def center(self, frame: int) -> tuple[float, float]:
        """Centre (x, y) in px at ``frame`` (extrapolated outside the visible span)."""
        steps = frame - self.appear_frame
        return (self.start[0] + self.velocity[0] * steps, self.start[1] + self.velocity[1] * steps)


@dataclass(frozen=True)
class ClipMetadata:
    """Everything needed to render a clip and to ask questions about it."""

    objects: tuple[ClipObject, ...]
    config: ClipConfig

    def to_dict(self) -> dict:
        """JSON-ready form; adds appear/disappear times in seconds for people reading it."""
        fps = self.config.fps
        objects = [
            {
                **asdict(o),
                "appear_time": o.appear_frame / fps,
                "disappear_time": o.disappear_frame / fps,
            }
            for o in self.objects
        ]
        return {"objects": objects, "config": asdict(self.config)}

    @classmethod
    def from_dict(cls, data: dict) -> ClipMetadata:
        """Inverse of ``to_dict`` (extra keys, such as the times in seconds, are ignored)."""
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items()}
        fields = ClipObject.__dataclass_fields__
        objects = []
        for item in data["objects"]:
            kwargs = {k: v for k, v in item.items() if k in fields}
            kwargs["start"], kwargs["velocity"] = tuple(kwargs["start"]), tuple(kwargs["velocity"])
            objects.append(ClipObject(**kwargs))
        return cls(objects=tuple(objects), config=ClipConfig(**config))


def moment_frames(meta: ClipMetadata) -> dict[str, int]:
    """The frame each presence moment names: "start" = first frame, "end" = last frame."""
    return {"start": 0, "end": meta.config.num_frames - 1}


def temporal_pairs(meta: ClipMetadata) -> list[tuple[int, int]]:
    """Index pairs (earlier, later) usable for a temporal-order question: staircases.

    The earlier object appears at least ``temporal_gap_frames`` before the later one and also
    disappears at least that long before it, and they share at least one frame. So each is
    alone (without the other) for a while, and "the one seen alone" names neither: the
    condition is symmetric under time reversal, which swaps the roles of the two objects.
    """
    gap, objects = meta.config.temporal_gap_frames, meta.objects
    pairs = []
    for i, first in enumerate(objects):
        for j, second in enumerate(objects):
            together = second.appear_frame < first.disappear_frame
            alone_first = second.appear_frame - first.appear_frame >= gap
            alone_last = second.disappear_frame - first.disappear_frame >= gap
            if together and alone_first and alone_last:
                pairs.append((i, j))
    return pairs


def reverse_in_time(meta: ClipMetadata) -> ClipMetadata:
    """The same scene played backwards: frame t of the result shows frame T-1-t of ``meta``.

    Appear/disappear frames swap roles, each object starts where it ended and moves the
    opposite way. Temporal-order answers flip; the set of frames is unchanged.
    """
    total = meta.config.num_frames
    objects = tuple(
        replace(
            o,
            appear_frame=total - o.disappear_frame,
            disappear_frame=total - o.appear_frame,
            direction=_OPPOSITE[o.direction],
            start=o.center(o.disappear_frame - 1),
            velocity=(-o.velocity[0], -o.velocity[1]),
        )
        for o in meta.objects
    )
    return ClipMetadata(objects=objects, config=meta.config)


def sample_clip(rng: np.random.Generator, cfg: ClipConfig) -> ClipMetadata:
    """Sample a valid scene; raises SceneSamplingError if the config leaves no room."""
    count = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    colors = [str(c) for c in rng.choice(cfg.colors, size=count, replace=False)]
    shapes = [str(s) for s in rng.choice(cfg.shapes, size=count, replace=False)]
    for _ in range(MAX_ATTEMPTS):
        objects: list[ClipObject] = []
        for color, shape in zip(colors, shapes):
            appear, disappear = _sample_timing(rng, cfg)
            placed = place_object(rng, cfg, color, shape, appear, disappear, objects)
            if placed is None:
                break
            objects.append(placed)
        else:
            meta = ClipMetadata(objects=tuple(objects), config=cfg)
            if _timings_usable(meta):
                # Played backwards half the time: the distribution becomes time-reversal
                # invariant, so only the order of the frames tells which object came first.
                return reverse_in_time(meta) if rng.random() < 0.5 else meta
    raise SceneSamplingError(MAX_ATTEMPTS, cfg.size, cfg.max_objects)


def _sample_timing(rng: np.random.Generator, cfg: ClipConfig) -> tuple[int, int]:
    """(appear_frame, disappear_frame) with at least min_visible_frames on screen."""
    last_appear = cfg.num_frames - cfg.min_visible_frames
    appear = 0 if rng.random() < cfg.p_from_start else int(rng.integers(0, last_appear + 1))
    earliest_leave = appear + cfg.min_visible_frames
    if rng.random() < cfg.p_until_end or earliest_leave >= cfg.num_frames:
        return appear, cfg.num_frames
    return appear, int(rng.integers(earliest_leave, cfg.num_frames))


def _timings_usable(meta: ClipMetadata) -> bool:
    # An empty first frame is allowed on purpose: otherwise the earlier object of a temporal pair
    # would nearly always be alone in frame 0, and that one frame would answer the question.
    shown = any(o.visible(f) for o in meta.objects for f in moment_frames(meta).values())
    return shown and (len(meta.objects) < 2 or bool(temporal_pairs(meta)))


def place_object(
    rng: np.random.Generator,
    cfg: ClipConfig,
    color: str,
    shape: str,
    appear: int,
    disappear: int,
    others: list[ClipObject],
) -> ClipObject | None:
    """Pick size, direction and a start point whose path stays in frame and clear of ``others``."""
    for _ in range(PLACE_TRIES):
        size = float(rng.uniform(*cfg.object_size) * cfg.size)
        direction = str(rng.choice(list(DIRECTIONS)))
        travel = float(rng.uniform(*cfg.travel) * cfg.size)
        low = size / 2 + cfg.margin  # nearest a centre may come to the frame edge
        high = cfg.size - low
        dx, dy = DIRECTIONS[direction]
        backwards = dx < 0 or dy < 0
        # Along the motion the start leaves room for the whole travel; across it, anywhere.
        along = float(rng.uniform(low + travel * backwards, high - travel * (not backwards)))
        across = float(rng.uniform(low, high))
        start = (along, across) if dx else (across, along)
        step = travel / (disappear - appear - 1)  # px per frame; last visible frame ends the travel
        velocity = (dx * step, dy * step)
        candidate = ClipObject(color, shape, size, appear, disappear, direction, start, velocity)
        if all(_apart(candidate, other, cfg.margin) for other in others):
            return candidate
    return None


def _apart(a: ClipObject, b: ClipObject, margin: float) -> bool:
    """True if the two objects' boxes stay ``margin`` px apart on every frame both are visible."""
    first, stop = max(a.appear_frame, b.appear_frame), min(a.disappear_frame, b.disappear_frame)
    frames = np.arange(first, stop)
    if frames.size == 0:
        return True
    ax, ay = np.asarray(a.start)[:, None] + np.outer(a.velocity, frames - a.appear_frame)  # (2, F)
    bx, by = np.asarray(b.start)[:, None] + np.outer(b.velocity, frames - b.appear_frame)
    reach = (a.size + b.size) / 2 + margin
    return bool(np.all((np.abs(ax - bx) >= reach) | (np.abs(ay - by) >= reach)))
