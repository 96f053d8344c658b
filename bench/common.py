"""Helpers shared by the benchmarks: side-by-side timing, tables, generated clips, machine facts.

Every benchmark compares variants measured *in one run, interleaved*: round r runs each variant
once (in a rotated order), and each variant's number is the median of its rounds. On a machine
shared with other work the absolute times drift; the ratios between variants measured this way
hold. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/x.py` from anywhere finds both `heron` and `bench`
    sys.path.insert(0, str(REPO))

# Local Ray without token auth, no hub downloads, no tokenizer thread pools fighting for 2 cores.
for _name, _value in (("RAY_AUTH_MODE", "disabled"), ("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_name, _value)

CLIP_VERSION = 1  # bump when make_clip draws different frames, so cached clips are rebuilt


# --- timing -------------------------------------------------------------------------------------


def interleaved(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, rotating the order; returns wall seconds per variant.

    Rotation matters: on a shared machine a burst of someone else's work then hits each variant
    in turn instead of always the same one.
    """
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            clock = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - clock)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """'min–max' of the rounds, so a reader sees how noisy a median was."""
    return f"{_fmt(float(min(values)))}–{_fmt(float(max(values)))}" if len(values) > 1 else "-"


# --- output -------------------------------------------------------------------------------------


@dataclass
class Table:
    """A plain-text table; ``headline`` is printed as its last line."""

    title: str
    columns: list[str]
    rows: list[list[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headline: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append(list(cells))

    def render(self) -> str:
        cells = [[_fmt(c) for c in row] for row in [self.columns, *self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [f"## {self.title}"]
        for n, row in enumerate(cells):
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines += [f"  {note}" for note in self.notes]
        if self.headline:
            lines.append(self.headline)
        return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"
    return str(value)


def reproduce_line(script: str, args: argparse.Namespace, keys: list[str]) -> str:
    """The command that reproduces a run, with the options that shaped it."""
    parts = [".venv/bin/python", script]
    for key in keys:
        value = getattr(args, key)
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif value is not None:
            parts += [flag, str(value)]
    return "# reproduce: " + shlex.join(parts)


def base_parser(description: str) -> argparse.ArgumentParser:
    git_commit()  # pin the commit now, before anything runs
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="bench-cpu", help="preset (configs/NAME.yaml) with model + pipeline")
    parser.add_argument("--device", default=None, help="override the preset's device (cpu, cuda)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per variant (median taken)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one round: a smoke test, not a measurement")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads in this process (0 = torch's default, all cores); see set_threads",
    )
    return parser


def set_threads(threads: int) -> int:
    """Set torch's CPU threads for the benchmark process; returns the number in use.

    Default 1, as each Ray actor with num_cpus <= 1 gets (Ray sets OMP_NUM_THREADS). On a 2-core
    machine shared with other work, 2 OpenMP threads measured 3-4x *slower* than 1 (each parallel
    region waits for the thread whose core is taken), so 1 thread also keeps ratios stable.
    """
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


# --- machine ------------------------------------------------------------------------------------


def machine_line() -> str:
    """One line naming the machine, library versions and commit, for tables and RESULTS.md."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{time.strftime('%Y-%m-%d')} | {os.cpu_count()} cores {cpu} | {gpu} | torch {torch.__version__} "
        f"| commit {git_commit()}"
    )


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit checked out when the benchmark started (cached: the lead may commit mid-run)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{head}{'+dirty' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --- generated clips ------------------------------------------------------------------------------


def clip_dir() -> Path:
    root = Path(os.environ.get("HERON_HOME", Path.home() / ".cache" / "heron"))
    path = root / "bench-clips"
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_clip(
    seconds: float,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    gop_s: float = 2.0,
    preset: str = "veryfast",
    seed: int = 0,
) -> Path:
    """An H.264 MP4 of a textured background panning under a moving square; cached by its settings.

    Texture (not flat colour) so that decoding costs what camera video costs per pixel, roughly;
    a fixed keyframe interval (``gop_s`` seconds, no scene-cut keyframes) so the keyframe-only
    and seek strategies see a known GOP. Frames are generated and encoded one at a time, so an
    hour-long clip needs no memory.
    """
    import av

    key = f"v{CLIP_VERSION}-{seconds:g}s-{width}x{height}-{fps}fps-gop{gop_s:g}-{preset}-{seed}"
    path = clip_dir() / f"{key}.mp4"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:height, :width] // 2
    texture = texture + rng.integers(0, 64, (height, width, 3), dtype=np.uint8)  # [H, W, 3] uint8
    count = int(round(seconds * fps))
    side = max(8, height // 6) // 2 * 2
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = max(1, int(round(gop_s * fps)))
        stream.codec_context.options = {"preset": preset, "sc_threshold": "0"}
        for i in range(count):
            frame = np.roll(texture, 2 * i, axis=1)  # pan: motion the encoder can predict
            x = int(i / max(count - 1, 1) * (width - side))
            frame[height // 3 : height // 3 + side, x : x + side] = (220, 30, 30)
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path


def log(message: str) -> None:
    """Progress to stderr (tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
