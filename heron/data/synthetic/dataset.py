"""Write a synthetic split to disk: mp4 clips, a question manifest and clip metadata.

Layout of ``out_dir/<split>/``:
  videos/000000.mp4 ...  H.264 clips
  manifest.jsonl         one question per line (paths relative to this folder)
  clips.jsonl            one clip per line: objects, timings, caption, config (for debugging)

Seed rule: clip ``i`` of split ``s`` with base seed ``S`` uses
``SeedSequence(S, spawn_key=(SPLIT_KEYS[s], i))``, so splits never share a clip seed and a clip
depends only on (S, s, i), not on ``n``.
"""

from __future__ import annotations

import json
import logging
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from heron.data.atomic import atomic_path
from heron.data.synthetic.config import CATEGORIES, SPLITS, ClipConfig, SyntheticConfigError
from heron.data.synthetic.questions import make_caption, make_questions
from heron.data.synthetic.render import generate_clip
from heron.data.video_writer import write_video

logger = logging.getLogger(__name__)

# Fixed forever: changing a key would silently change every generated dataset of that split.
SPLIT_KEYS: dict[str, int] = {"train": 0, "val": 1, "test": 2}


def split_seeds(seed: int, split: str, n: int, *, start: int = 0) -> list[int]:
    """Per-clip seeds (63-bit ints) of clips ``start .. start + n - 1`` of ``split``."""
    _check_split(split)
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise SyntheticConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(n, numbers.Integral) or n < 0 or start < 0:
        raise SyntheticConfigError(f"n and start must be >= 0, got n={n}, start={start}")
    key = SPLIT_KEYS[split]
    seeds = []
    for index in range(start, start + n):
        sequence = np.random.SeedSequence(int(seed), spawn_key=(key, index))
        # 63 bits, so any JSON reader that stores integers as int64 holds the seed exactly.
        seeds.append(int(sequence.generate_state(1, np.uint64)[0]) >> 1)
    return seeds


@dataclass(frozen=True)
class _ClipJob:
    index: int
    seed: int  # the clip's own seed from split_seeds
    base_seed: int
    split: str
    split_dir: Path
    cfg: ClipConfig
    questions_per_clip: int


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    *,
    split: str = "train",
    clip: ClipConfig | None = None,
    questions_per_clip: int = len(CATEGORIES),
    progress: bool = False,
) -> Path:
    """Generate ``n`` clips (not questions) into ``out_dir/<split>/``; returns the manifest path.

    Each clip gets ``questions_per_clip`` questions of distinct categories (fewer for one-object
    clips, which have no temporal-order question). One process: ~7 ms per default clip, most of
    it H.264 encoding, so 1,000 clips take ~8 s; worker processes would cost more to start
    (importing heron) than they save at that scale.
    """
    cfg = clip if clip is not None else ClipConfig()
    if not isinstance(n, numbers.Integral) or n < 1:
        raise SyntheticConfigError(f"n (number of clips) must be a positive integer, got {n!r}")
    if not 1 <= questions_per_clip <= len(CATEGORIES):
        raise SyntheticConfigError(f"questions_per_clip must be in [1, {len(CATEGORIES)}], got {questions_per_clip}")
    clip_seeds = split_seeds(seed, split, n)  # validates split and seed before anything is written
    split_dir = Path(out_dir) / split
    (split_dir / "videos").mkdir(parents=True, exist_ok=True)
    jobs = [
        _ClipJob(index, clip_seed, seed, split, split_dir, cfg, questions_per_clip)
        for index, clip_seed in enumerate(clip_seeds)
    ]
    manifest, clips_path = split_dir / "manifest.jsonl", split_dir / "clips.jsonl"
    # Written under temporary names and renamed at the end, so an interrupted run leaves no half
    # manifest and two runs generating the same split never mix their lines.
    questions = 0
    with atomic_path(manifest) as tmp_manifest, atomic_path(clips_path) as tmp_clips:
        with open(tmp_manifest, "w") as mf, open(tmp_clips, "w") as cf:
            for job in tqdm(jobs, disable=not progress, desc=f"synth {split}", unit="clip"):
                clip_record, items = _build_clip(job)
                cf.write(json.dumps(clip_record) + "\n")
                mf.writelines(json.dumps(item) + "\n" for item in items)
                questions += len(items)
    logger.info("wrote %d clips and %d questions to %s", n, questions, manifest)
    return manifest


def _build_clip(job: _ClipJob) -> tuple[dict, list[dict]]:
    """Render, encode and describe one clip; returns (clips.jsonl record, manifest records)."""
    cfg = job.cfg
    rng = np.random.default_rng(job.seed)
    frames, meta = generate_clip(rng, cfg)
    questions = make_questions(meta, rng)
    if job.questions_per_clip < len(questions):
        keep = np.sort(rng.choice(len(questions), size=job.questions_per_clip, replace=False))
        questions = [questions[k] for k in keep]
    video = f"videos/{job.index:06d}.mp4"
    # write_video's default time base is 1/round(fps); give explicit times for fractional rates.
    pts = None if float(cfg.fps).is_integer() else np.arange(cfg.num_frames) / cfg.fps
    write_video(job.split_dir / video, frames, fps=cfg.fps, pts_seconds=pts)
    common = {"video": video, "start": 0.0, "end": cfg.duration}
    items = [{"id": f"{job.split}-{job.index:06d}-{q['category']}", **common, **q, "seed": job.seed} for q in questions]
    record = {
        "clip": job.index,
        "split": job.split,
        "base_seed": job.base_seed,
        "seed": job.seed,
        **common,
        "caption": make_caption(meta),
        **meta.to_dict(),
    }
    return record, items


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise SyntheticConfigError(f"split must be one of {list(SPLITS)}, got {split!r}")
