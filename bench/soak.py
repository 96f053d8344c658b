"""Soak: a live stream for minutes while questions are asked; do memory, files and Redis stay flat?

    .venv/bin/python bench/soak.py                  # 10 minutes of live stream (demo preset)
    .venv/bin/python bench/soak.py --minutes 60
    .venv/bin/python bench/soak.py --quick          # 1 minute, 60 ingests: a smoke run

1. Live: a demo-world scene (a square appears for a few seconds every ``--period`` s) played in
   real time as a live stream with a watch and live retention (``live.retention_windows``), while a
   thread asks about its last seconds every ``--ask-every`` s. Every ``--every`` s: each actor's
   RSS (encode, answer, stream; psutil) and open file descriptors (/proc/PID/fd), and Redis
   ``INFO used_memory``. The first ``--warmup`` fraction of the run is left out; "flat" is
   judged on a least-squares line through the second half (slope per minute), which a slow leak
   tilts and allocator noise does not.
2. Ingests: ``--ingests`` short files ingested one after another through one Heron (the cache of
   each cleared first, so every one decodes); the pooled decode actor's RSS and fds after each,
   with decord (the default for files; decord is known to leak) and with PyAV.
3. Encodes (run after the live soak): ``--encodes`` windows of random frames encoded one call at a time,
   as a live stream sends them; the encode actor's USS swings by tens of MB as its allocator takes
   and gives back torch's buffers, so what is compared is how far the last third lies above the
   first: the lesser of its floor's (minimum) and its median's rise, as a leak lifts both.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.common import Table, base_parser, clip_dir, log, machine_line, reproduce_line

SCRIPT = "bench/soak.py"
QUESTION = "Is there a red square at the end of the video?"  # the demo model's presence question
MB = 2**20


# --- inputs ---------------------------------------------------------------------------------------


def write_scene(path: Path, seconds: float, *, period: float = 10.0, shown: float = 4.0, fps: int = 8) -> Path:
    """A demo-world scene (dark, 96 px) with a red square on screen for ``shown`` s every
    ``period`` s, written frame by frame (an hour needs no memory); a keyframe every second and no
    B-frames, as a camera sends. Kept if it exists."""
    import av

    from heron.data.scenes import appearing_square_frames

    path = Path(path)
    if path.exists():
        return path
    one = appearing_square_frames(period, [(period - shown, period)], fps=fps)  # [period*fps, 96, 96, 3]
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = one.shape[2], one.shape[1], "yuv420p"
        stream.codec_context.gop_size = fps
        stream.codec_context.options = {"bf": "0", "preset": "veryfast", "sc_threshold": "0"}
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(one[i % len(one)], format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path


# --- sampling ---------------------------------------------------------------------------------------


def actor_pids(heron, stream_ids: list[str] = ()) -> dict[str, int]:
    """name -> OS pid of each actor this Heron runs now (asked of the actors themselves)."""
    from heron.actors.calls import get

    actors = {f"encode{i}": a for i, a in enumerate(heron.encoders)} | {"answer": heron.answerer}
    actors |= {f"decode{i}": a for i, a in enumerate(heron._decoders)}
    actors |= {f"stream:{s}": heron.streams._actors[s] for s in stream_ids}
    return {name: get(actor.pid.remote(), timeout_s=60) for name, actor in actors.items()}


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Samples:
    """Time series, one value per sample: seconds since the start, and per series name the values."""

    t: list[float] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)

    def add(self, t: float, values: dict[str, float]) -> None:
        self.t.append(t)
        for name, value in values.items():
            self.series.setdefault(name, []).append(value)


def sample_processes(pids: dict[str, int], redis_client=None) -> dict[str, float]:
    """RSS and USS (bytes) and open fds of each process; Redis used_memory (bytes) when a client is
    given. USS (pages only this process maps) leaves out the shared pages of Ray's object store
    that a process touched, which RSS counts: a decode actor writing frames there grows in RSS
    until the store's pages are all touched, without holding anything."""
    import psutil

    values: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error, OSError):  # a process restarting: a gap, not a failure
            process = psutil.Process(pid)
            values[f"rss {name}"] = process.memory_info().rss
            values[f"uss {name}"] = process.memory_full_info().uss
            values[f"fds {name}"] = open_fds(pid)
    if redis_client is not None:
        values["redis used_memory"] = redis_client.info("memory")["used_memory"]
    return values


def dialogue_bytes(client, prefix: str) -> int:
    """Bytes Redis holds in dialogue sessions (``{prefix}session:*``; MEMORY USAGE): they have no
    expiry, so every question asked in a new session adds its two turns for good."""
    keys = list(client.scan_iter(match=f"{prefix}session:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(size or 0 for size in pipe.execute())


# --- flatness ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """A series after warm-up: least-squares slope over its second half (value units per unit of
    t: per second of a live run, per ingest), the medians and the minima ("floors") of its first
    and last thirds, and the spread (max - min) of its second half. A process whose allocator
    takes and gives back large buffers swings above a floor that only a leak raises."""

    slope: float
    first_third: float
    last_third: float
    spread: float
    n: int
    first_floor: float
    last_floor: float

    @property
    def lifted(self) -> float:
        """How far the whole last third lies above the first: the lesser of the floors' and the
        medians' rise. A leak lifts both; allocator swings move one or the other."""
        return min(self.last_floor - self.first_floor, self.last_third - self.first_third)


def trend(t: list[float], values: list[float], *, warmup: float = 0.2) -> Trend:
    """``values`` at times ``t`` (s), the first ``warmup`` fraction of the samples left out."""
    t_arr, v_arr = np.asarray(t, float), np.asarray(values, float)
    keep = slice(int(len(v_arr) * warmup), None)
    t_arr, v_arr = t_arr[keep], v_arr[keep]
    half = len(v_arr) // 2
    th, vh = t_arr[half:], v_arr[half:]
    slope = float(np.polyfit(th, vh, 1)[0]) if len(vh) >= 3 and np.ptp(th) > 0 else float("nan")
    third = max(1, len(v_arr) // 3)
    return Trend(
        slope,
        float(np.median(v_arr[:third])),
        float(np.median(v_arr[-third:])),
        float(np.ptp(vh)) if len(vh) else float("nan"),
        len(v_arr),
        float(v_arr[:third].min()),
        float(v_arr[-third:].min()),
    )


# --- the live soak ------------------------------------------------------------------------------------


@dataclass
class LiveSoak:
    samples: Samples
    asked: int
    answered: int
    errors: list[str]
    answer_seconds: list[float]
    windows: int
    windows_kept: int
    pids: dict[str, int]
    pids_after: dict[str, int]


def live_soak(
    heron,
    scene: Path,
    seconds: float,
    *,
    every_s: float = 2.0,
    ask_every_s: float = 2.0,
    last_s: float = 8.0,
    on_sample: Callable[[float, dict], None] | None = None,
) -> LiveSoak:
    """Play ``scene`` in real time as a live stream for ``seconds`` while a thread asks about its
    last ``last_s`` s every ``ask_every_s`` s (each question a new session, as HTTP clients ask);
    sample every ``every_s`` s. ``heron.cfg.live.retention_windows`` bounds what Redis keeps."""
    import redis

    watch = heron.streams.make_watch(QUESTION, watch_id="red", cooldown_s=2.0)
    stream = heron.streams.start(str(scene), stream_id=f"soak-{time.monotonic_ns()}", realtime=True, watches=[watch])
    pids = actor_pids(heron, [stream])
    client = redis.Redis.from_url(heron.db.url)
    stop = threading.Event()
    asked = answered = 0
    errors: list[str] = []
    answer_seconds: list[float] = []

    def ask() -> None:
        nonlocal asked, answered
        from heron.errors import EmptyVideoError

        while not stop.wait(ask_every_s):
            asked += 1
            clock = time.perf_counter()
            try:
                heron.ask(stream, QUESTION, last_s=last_s)
                answered += 1
                answer_seconds.append(time.perf_counter() - clock)
            except EmptyVideoError:  # no window yet (the first seconds)
                continue
            except Exception as error:  # counted and reported: the soak goes on
                errors.append(f"{type(error).__name__}: {error}"[:200])

    asker = threading.Thread(target=ask, name="soak-asker", daemon=True)
    samples = Samples()
    started = time.monotonic()
    asker.start()
    try:
        while (now := time.monotonic() - started) < seconds:
            values = sample_processes(pids, client)
            values["redis dialogue bytes"] = dialogue_bytes(client, heron.db.prefix)
            values["redis used_memory less dialogue"] = values["redis used_memory"] - values["redis dialogue bytes"]
            samples.add(now, values)
            if on_sample is not None:
                on_sample(now, values)
            if heron.streams.status(stream)["status"] in ("ended", "failed"):
                errors.append(f"the stream ended after {now:.0f} s (the scene is too short for the run)")
                break
            time.sleep(max(0.0, every_s - (time.monotonic() - started - now)))
    finally:
        stop.set()
        asker.join(timeout=120)
    pids_after = actor_pids(heron, [stream])  # a changed pid: an actor crashed and was restarted
    status = heron.streams.status(stream)
    kept = len(heron.latents.cached_indices(stream))
    heron.streams.forget(stream)
    client.close()
    return LiveSoak(samples, asked, answered, errors, answer_seconds, status["windows"], kept, pids, pids_after)


# --- ingests ----------------------------------------------------------------------------------------


def short_clips(directory: Path, count: int = 4, seconds: float = 4.0) -> list[str]:
    """``count`` different short demo-world clips (a square of another colour each)."""
    from heron.data.scenes import appearing_square_frames
    from heron.data.video_writer import write_video

    directory.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(count):
        path = directory / f"short-{i}-{seconds:g}s.mp4"
        if not path.exists():
            color = (220 - 50 * i % 200, 40 + 60 * i % 200, 40 + 90 * i % 200)
            write_video(path, appearing_square_frames(seconds, [(0.0, seconds)], color=color), fps=8, gop=8)
        clips.append(str(path))
    return clips


def ingest_soak(heron, clips: list[str], ingests: int, *, every: int = 1) -> tuple[Samples, int]:
    """Ingest ``clips`` in turn ``ingests`` times (each one's cache cleared first, so each decodes);
    sample the decode actor and the driver every ``every`` ingests (x = ingests done). Returns the
    samples and how many decode actor pids were seen (more than 1: the pool started a new one)."""
    from heron.pipeline.sources import content_id

    ids = {clip: content_id(clip) for clip in clips}
    samples, seen = Samples(), set()
    for n in range(1, ingests + 1):
        clip = clips[n % len(clips)]
        heron.latents.clear_source(ids[clip])
        heron.ingest(clip)
        if n % every == 0 or n == 1:
            pids = {name: pid for name, pid in actor_pids(heron).items() if name.startswith("decode")}
            seen |= set(pids.values())
            values = sample_processes({"decode": pids["decode0"], "driver": os.getpid()})
            samples.add(float(n), values)
    return samples, len(seen)


# --- encodes -----------------------------------------------------------------------------------------


def encode_soak(heron, windows: int, *, every: int = 5, seed: int = 0) -> Samples:
    """Encode ``windows`` windows of random frames one call at a time on the first encode actor, as
    a live stream sends them; sample its USS, RSS and fds every ``every`` windows (x = windows
    done). Random frames: no two calls alike, so nothing a cache keeps could pass for flat."""
    from heron.actors.calls import get
    from heron.types import FrameBatch

    encoder = heron.encoders[0]
    pid = get(encoder.pid.remote(), timeout_s=60)
    frames_per_window, size = heron.cfg.decode.window_frames, heron.cfg.decode.size
    rng = np.random.default_rng(seed)
    samples = Samples()
    for n in range(windows):
        frames = rng.integers(0, 256, (frames_per_window, size, size, 3), dtype=np.uint8)  # [T, H, W, 3]
        pts = (n * frames_per_window + np.arange(frames_per_window)) / heron.cfg.decode.fps  # [T] s
        get(encoder.encode.remote([FrameBatch("encode-soak", n, frames, pts)]), timeout_s=60)
        if n % every == 0:
            samples.add(float(n), sample_processes({"encode": pid}))
    return samples


# --- the benchmark -------------------------------------------------------------------------------------


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.set_defaults(config="demo")
    p.add_argument("--minutes", type=float, default=None, help="live stream length (default 10; --quick 1)")
    p.add_argument("--every", type=float, default=None, help="seconds between samples (default: run / 100, >= 1)")
    p.add_argument("--ask-every", type=float, default=2.0, help="seconds between questions")
    p.add_argument("--retention-windows", type=int, default=8, help="live.retention_windows: windows Redis keeps")
    p.add_argument(
        "--ingests", type=int, default=None, help="short files ingested one by one (default 400; --quick 60)"
    )
    p.add_argument("--encodes", type=int, default=None, help="windows encoded one by one (default 2000; --quick 300)")
    p.add_argument("--clip-seconds", type=float, default=30.0, help="length of each ingested file (s)")
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of each run left out as warm-up")
    return p


def run(args) -> dict:
    import dataclasses

    from heron.config import load_pipeline_config
    from heron.service import Heron
    from heron.state import ThrowawayRedis

    minutes = args.minutes or (1.0 if args.quick else 10.0)
    seconds = minutes * 60
    every = args.every or max(1.0, seconds / 100)
    ingests = args.ingests or (60 if args.quick else 400)
    encodes = args.encodes or (300 if args.quick else 2000)
    cfg = load_pipeline_config(args.config)
    if args.device:
        cfg.device = args.device
    cfg.live = dataclasses.replace(cfg.live, retention_windows=args.retention_windows)
    scene = write_scene(clip_dir() / f"soak-{seconds + 60:g}s.mp4", seconds + 60)
    clips = short_clips(clip_dir(), seconds=args.clip_seconds)
    table = Table(
        f"Soak ({args.config}): {minutes:g} min live stream, a question every {args.ask_every:g} s, "
        f"retention {args.retention_windows} windows; {ingests} ingests of {len(clips)} {args.clip_seconds:g}-s files",
        [
            "series",
            "samples",
            "first third",
            "last third",
            "floor first",
            "floor last",
            "slope /min or /100",
            "2nd-half spread",
        ],
    )
    result: dict = {}
    with ThrowawayRedis() as server, Heron(cfg, redis_url=server.url, progress=False) as heron:
        heron.warm_up()
        log(f"live soak: {minutes:g} min, a sample every {every:g} s")
        live = live_soak(heron, scene, seconds, every_s=every, ask_every_s=args.ask_every, on_sample=_progress(every))
        for name, values in live.samples.series.items():
            _row(table, f"live: {name}", live.samples.t, values, args.warmup, per=60.0)
        log(f"encode soak: {encodes} windows, one per call")
        encoded = encode_soak(heron, encodes)
        for name, values in encoded.series.items():
            _row(table, f"encodes: {name}", encoded.t, values, args.warmup, per=100.0)
        uss = trend(encoded.t, encoded.series["uss encode"], warmup=args.warmup)
        result["encode_uss_lifted_mb"] = uss.lifted / MB
        for decoder in ("decord", "pyav"):
            heron.close()  # fresh actors with this decoder
            heron.cfg.decode = dataclasses.replace(heron.cfg.decode, decoder=decoder)
            log(f"ingest soak: {ingests} ingests, decoder {decoder}")
            samples, pids_seen = ingest_soak(heron, clips, ingests, every=max(1, ingests // 50))
            for name, values in samples.series.items():
                _row(table, f"ingests ({decoder}): {name}", samples.t, values, args.warmup, per=100.0)
            rss = trend(samples.t, samples.series["rss decode"], warmup=args.warmup)
            result[f"decode_rss_per_100_ingests_{decoder}_mb"] = rss.slope * 100 / MB
            result[f"decode_pids_{decoder}"] = pids_seen
    restarted = sorted(k for k in live.pids if live.pids_after.get(k) != live.pids[k])
    median_answer = statistics.median(live.answer_seconds) if live.answer_seconds else float("nan")
    table.notes += [
        "slope: least-squares line through the second half after warm-up, per minute (live) or per 100"
        " ingests or windows; floor: the minimum of a third; rss, uss and redis in MB",
        f"questions: {live.answered} answered of {live.asked} asked, median {median_answer:.2f} s; "
        f"errors {len(live.errors)}{': ' + live.errors[0] if live.errors else ''}",
        f"stream: {live.windows} windows, {live.windows_kept} kept at the end (retention); "
        f"actors restarted during the run: {', '.join(restarted) or 'none'}",
        machine_line(),
        reproduce_line(
            SCRIPT,
            args,
            [
                "config",
                "device",
                "quick",
                "minutes",
                "every",
                "ask_every",
                "retention_windows",
                "ingests",
                "encodes",
                "clip_seconds",
            ],
        ),
    ]
    rss_slopes = {
        k: trend(live.samples.t, v, warmup=args.warmup).slope * 60 / MB
        for k, v in live.samples.series.items()
        if k.startswith("rss")
    }
    worst = max(rss_slopes, key=lambda k: abs(rss_slopes[k]))
    redis_slope = trend(live.samples.t, live.samples.series["redis used_memory"], warmup=args.warmup)
    result |= {
        "worst_rss_slope_mb_per_min": rss_slopes[worst],
        "redis_slope_kb_per_min": redis_slope.slope * 60 / 1024,
        "answered": live.answered,
        "errors": len(live.errors),
    }
    table.headline = (
        f"HEADLINE soak: {minutes:g} min live, worst actor RSS slope {rss_slopes[worst]:+.2f} MB/min ({worst}); "
        f"Redis {result['redis_slope_kb_per_min']:+.1f} KB/min; decode actor RSS per 100 ingests "
        f"{result['decode_rss_per_100_ingests_decord_mb']:+.1f} MB (decord), "
        f"{result['decode_rss_per_100_ingests_pyav_mb']:+.1f} MB (PyAV); encode actor USS lifted "
        f"{result['encode_uss_lifted_mb']:+.1f} MB over {encodes} windows; {live.answered} answers, "
        f"{len(live.errors)} errors"
    )
    print(table.render(), flush=True)
    return result


def _row(table: Table, name: str, t, values, warmup: float, *, per: float) -> None:
    """One series' trend; ``per``: units of t the slope is given per (60 s, 100 ingests)."""
    found = trend(t, values, warmup=warmup)
    scale = 1 / MB if ("ss " in name or "redis" in name) else 1.0
    cells = (found.first_third, found.last_third, found.first_floor, found.last_floor, found.slope * per, found.spread)
    cells = tuple(c * scale for c in cells)
    table.add(name, found.n, *cells)


def _progress(every_s: float) -> Callable[[float, dict], None]:
    """Logs about once a minute what the samples say (RSS in MB)."""

    def show(t: float, values: dict) -> None:
        if int(t) % 60 < every_s:
            shown = {k: v / MB if ("ss " in k or "redis" in k) else v for k, v in values.items() if "fds" not in k}
            log(f"{t:5.0f} s  " + "  ".join(f"{k}={v:.1f}" for k, v in shown.items()))

    return show


def main(argv: list[str] | None = None) -> dict:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
