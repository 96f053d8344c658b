"""Long synthetic videos: minutes of an empty scene with a few distinct events at known times.

Each event is one object (unique colour and shape pair, drawn like the clips' objects) that
appears, moves and vanishes within ``event_s`` seconds; events never overlap and are at least
``min_gap_s`` apart, so which came first is always defined. Questions (docs/long_videos.md):

    long_presence   "Is there a red square in the video?"                  yes | no
    long_attribute  "What shape is the red object?"                        square | circle | triangle
    long_order      "Which appeared first, the red square or the blue circle?"  the earlier one's shape
    long_when       "When does the red square appear?"                     the window it starts in
    long_count      "How many objects appear in the video?"                one .. six

Every question names the spans that hold its evidence (``evidence``: [[start, end], ...] s).
``long_when``'s answer is an ordinal ("third"): which of the windows given to the model it starts
in, counted from the first; for a whole video that is its window on the grid, and the answer
stage turns it back into that window's time span (heron.pipeline.when).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from heron.data.atomic import atomic_path
from heron.data.synthetic.config import NUMBER_WORDS, PALETTE, ClipConfig, SceneSamplingError, SyntheticConfigError
from heron.data.synthetic.render import shape_mask
from heron.data.synthetic.scene import ClipObject, place_object
from heron.data.video_writer import write_video_chunks
from heron.text import ORDINALS

logger = logging.getLogger(__name__)

LONG_CATEGORIES: tuple[str, ...] = ("long_presence", "long_attribute", "long_order", "long_when", "long_count")
# Fixed forever, as dataset.SPLIT_KEYS: long splits never share a seed with clips or each other.
LONG_SPLIT_KEYS: dict[str, int] = {"train": 10, "val": 11, "test": 12}


@dataclass(frozen=True)
class LongConfig:
    duration_s: tuple[float, float] = (300.0, 300.0)  # each video's length is uniform in this range
    events: tuple[int, int] = (3, 5)  # how many events a video has, uniform in this range
    event_s: tuple[float, float] = (1.25, 2.0)  # how long each event's object is on screen
    min_gap_s: float = 1.0  # least time between events (and before the first): order is always clear
    window_s: float = 2.0  # the model's window (window_frames / fps): "when" answers count these
    clip: ClipConfig = field(default_factory=ClipConfig)  # size, fps, palette, background, objects

    def fitting(self, seconds: float) -> int:
        """How many events surely fit in a video of ``seconds`` (a video gets no more than this)."""
        return int((seconds - self.min_gap_s) // (self.event_s[1] + self.min_gap_s))

    def __post_init__(self) -> None:
        (short, long), (few, many) = self.duration_s, self.events
        if not 0 < short <= long:
            raise SyntheticConfigError(f"duration_s must be an increasing positive range, got {self.duration_s}")
        most = min(len(self.clip.colors) * len(self.clip.shapes), len(NUMBER_WORDS) - 1)
        if not 1 <= few <= many <= most:
            raise SyntheticConfigError(f"events must be a range within [1, {most}], got {self.events}")
        if not 0 < self.event_s[0] <= self.event_s[1]:
            raise SyntheticConfigError(f"event_s must be an increasing positive range, got {self.event_s}")
        if self.fitting(short) < few:
            raise SyntheticConfigError(
                f"{few} events of up to {self.event_s[1]} s, {self.min_gap_s} s apart, do not fit in {short} s"
            )
        if math.ceil(long / self.window_s) > len(ORDINALS):
            logger.debug("videos longer than %d windows: 'when' answers of late events are not ordinals", len(ORDINALS))


@dataclass(frozen=True)
class Event:
    obj: ClipObject  # frames relative to the event: visible on 0 <= t < obj.disappear_frame
    start_frame: int  # the video frame the event's first frame is

    def start_s(self, fps: float) -> float:
        return self.start_frame / fps

    def end_s(self, fps: float) -> float:
        return (self.start_frame + self.obj.disappear_frame) / fps


@dataclass(frozen=True)
class LongVideo:
    events: tuple[Event, ...]  # by start time
    num_frames: int
    config: LongConfig

    @property
    def fps(self) -> float:
        return self.config.clip.fps

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def frames(self, chunk: int = 256) -> Iterator[np.ndarray]:
        """The video as uint8 chunks [<=chunk, H, W, 3], rendered as they are needed."""
        cfg = self.config.clip
        coords = np.arange(cfg.size, dtype=np.float32)
        grid = (coords[None, :], coords[:, None])
        for first in range(0, self.num_frames, chunk):
            frames = np.empty((min(chunk, self.num_frames - first), cfg.size, cfg.size, 3), dtype=np.uint8)
            frames[:] = cfg.background
            for event in self.events:
                color = np.asarray(PALETTE[event.obj.color], dtype=np.uint8)
                for t in range(
                    max(first, event.start_frame),
                    min(first + len(frames), event.start_frame + event.obj.disappear_frame),
                ):
                    local = t - event.start_frame
                    frames[t - first][shape_mask(event.obj.shape, event.obj.center(local), event.obj.size, grid)] = (
                        color
                    )
            yield frames

    def to_dict(self) -> dict:
        fps = self.fps
        return {
            "duration": self.duration,
            "events": [
                {
                    "color": e.obj.color,
                    "shape": e.obj.shape,
                    "direction": e.obj.direction,
                    "start": round(e.start_s(fps), 4),
                    "end": round(e.end_s(fps), 4),
                }
                for e in self.events
            ],
        }


def sample_long_video(rng: np.random.Generator, cfg: LongConfig) -> LongVideo:
    """Events with distinct colours (and distinct (colour, shape) pairs), spread over the video."""
    clip, fps = cfg.clip, cfg.clip.fps
    num_frames = int(round(rng.uniform(*cfg.duration_s) * fps))
    count = min(int(rng.integers(cfg.events[0], cfg.events[1] + 1)), cfg.fitting(num_frames / fps))
    colors = [str(c) for c in rng.choice(clip.colors, size=count, replace=count > len(clip.colors))]
    pairs: list[tuple[str, str]] = []
    for color in colors:
        options = [s for s in clip.shapes if (color, s) not in pairs]
        pairs.append((color, str(options[int(rng.integers(len(options)))])))
    lengths = [int(round(rng.uniform(*cfg.event_s) * fps)) for _ in pairs]
    # Starts: the free time (video minus events and gaps) split at sorted uniform points.
    gap = int(math.ceil(cfg.min_gap_s * fps))
    free = num_frames - sum(lengths) - gap * (count + 1)
    cuts = np.sort(rng.integers(0, free + 1, size=count))
    events, used = [], 0
    for k, ((color, shape), length) in enumerate(zip(pairs, lengths)):
        start = int(cuts[k]) + gap * (k + 1) + used
        used += length
        placed = next((o for o in (place_object(rng, clip, color, shape, 0, length, []) for _ in range(20)) if o), None)
        if placed is None:  # alone on the canvas it always fits unless the config cannot
            raise SceneSamplingError(20, clip.size, 1)
        events.append(Event(placed, start))
    return LongVideo(tuple(events), num_frames, cfg)


def long_questions(video: LongVideo, rng: np.random.Generator) -> list[dict]:
    """Questions of every long category the video supports (one each, two for presence: a yes and
    a no). Items: question, answer, category, choices, evidence (the spans that hold the answer)."""
    fps, clip = video.fps, video.config.clip
    events = list(video.events)
    spans = {id(e): [[round(e.start_s(fps), 4), round(e.end_s(fps), 4)]] for e in events}
    out = []

    def pick(items):
        return items[int(rng.integers(len(items)))]

    shown = pick(events)
    present = {(e.obj.color, e.obj.shape) for e in events}
    out.append(
        _item(f"Is there a {shown.obj.name} in the video?", "yes", "long_presence", ("yes", "no"), spans[id(shown)])
    )
    absent = [(c, s) for c in clip.colors for s in clip.shapes if (c, s) not in present]
    if absent:
        color, shape = pick(absent)
        out.append(_item(f"Is there a {color} {shape} in the video?", "no", "long_presence", ("yes", "no"), []))
    asked = pick(events)
    by_color = [e for e in events if e.obj.color == asked.obj.color]
    by_shape = [e for e in events if e.obj.shape == asked.obj.shape]
    if len(by_shape) == 1 and rng.random() < 0.5:
        out.append(
            _item(
                f"What color is the {asked.obj.shape}?",
                asked.obj.color,
                "long_attribute",
                clip.colors,
                spans[id(asked)],
            )
        )
    elif len(by_color) == 1:
        out.append(
            _item(
                f"What shape is the {asked.obj.color} object?",
                asked.obj.shape,
                "long_attribute",
                clip.shapes,
                spans[id(asked)],
            )
        )
    pairs = [(a, b) for i, a in enumerate(events) for b in events[i + 1 :] if a.obj.shape != b.obj.shape]
    if pairs:
        earlier, later = pick(pairs)
        named = [earlier, later] if rng.random() < 0.5 else [later, earlier]
        question = f"Which appeared first, the {named[0].obj.name} or the {named[1].obj.name}?"
        choices = (named[0].obj.shape, named[1].obj.shape)
        out.append(_item(question, earlier.obj.shape, "long_order", choices, spans[id(earlier)] + spans[id(later)]))
    timed = pick(events)
    window = int(timed.start_s(fps) // video.config.window_s)
    # the answer of a video given whole (training); a long video's is judged by its evidence span
    answer = ORDINALS[window] if window < len(ORDINALS) else f"{timed.start_s(fps):.1f} s"
    out.append(_item(f"When does the {timed.obj.name} appear?", answer, "long_when", (), spans[id(timed)]))
    out.append(
        _item(
            "How many objects appear in the video?",
            NUMBER_WORDS[len(events)],
            "long_count",
            NUMBER_WORDS[1:],
            [s for e in events for s in spans[id(e)]],
        )
    )
    return out


def _item(question: str, answer: str, category: str, choices, evidence: list) -> dict:
    return {
        "question": question,
        "answer": answer,
        "category": category,
        "choices": list(choices),
        "evidence": evidence,
    }


def generate_long_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    *,
    split: str = "test",
    cfg: LongConfig | None = None,
    progress: bool = False,
) -> Path:
    """``n`` long videos into ``out_dir/<split>/`` (videos/, manifest.jsonl, videos.jsonl); returns
    the manifest. Video ``i`` uses ``SeedSequence(seed, spawn_key=(LONG_SPLIT_KEYS[split], i))``."""
    cfg = cfg if cfg is not None else LongConfig()
    if split not in LONG_SPLIT_KEYS:
        raise SyntheticConfigError(f"split must be one of {list(LONG_SPLIT_KEYS)}, got {split!r}")
    if not isinstance(n, numbers.Integral) or n < 1:
        raise SyntheticConfigError(f"n (number of videos) must be a positive integer, got {n!r}")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise SyntheticConfigError(f"seed must be a non-negative integer, got {seed!r}")
    split_dir = Path(out_dir) / split
    (split_dir / "videos").mkdir(parents=True, exist_ok=True)
    manifest, records = split_dir / "manifest.jsonl", split_dir / "videos.jsonl"
    with atomic_path(manifest) as tmp_manifest, atomic_path(records) as tmp_records:
        with open(tmp_manifest, "w") as mf, open(tmp_records, "w") as rf:
            for index in tqdm(range(n), disable=not progress, desc=f"synth long {split}", unit="video"):
                sequence = np.random.SeedSequence(int(seed), spawn_key=(LONG_SPLIT_KEYS[split], index))
                rng = np.random.default_rng(sequence)
                video = sample_long_video(rng, cfg)
                name = f"videos/{index:06d}.mp4"
                write_video_chunks(split_dir / name, video.frames(), fps=video.fps, size=cfg.clip.size)
                common = {"video": name, "start": 0.0, "end": video.duration}
                for k, item in enumerate(long_questions(video, rng)):
                    mf.write(json.dumps({"id": f"long-{split}-{index:06d}-{k}", **common, **item}) + "\n")
                rf.write(json.dumps({"video": name, "index": index, **video.to_dict()}) + "\n")
    logger.info("wrote %d long videos to %s", n, split_dir)
    return manifest
