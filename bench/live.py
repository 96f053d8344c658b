"""Live streams: alert latency, streams one core keeps up with, batched vs one-by-one watch scoring.

    .venv/bin/python bench/live.py               # demo preset (the trained model: its watches answer)

1. Watch scoring for 8 streams x 4 watches (32 yes/no questions on 8 windows), in-process:
   one batched call (the answer actor's way: one forward pass, each window's keys/values once)
   vs 32 calls one by one, interleaved.
2. What one stream costs per window on one core (decode of a 640x360 15 fps camera, sampling,
   encode, scoring its watches), and so how many streams one core keeps up with in real time.
3. Alert latency, end to end (a stream actor, the encode pool, the answer actor, Redis): a file
   played in real time in which a red square appears every few seconds; latency = when the alert
   is read from Redis - when the square came on screen.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.common import Table, base_parser, interleaved, log, machine_line, make_clip, median, reproduce_line, spread

SCRIPT = "bench/live.py"
QUESTIONS = [
    "Is there a red square at the end of the video?",
    "Is there a blue circle at the end of the video?",
    "Is there a green triangle at the start of the video?",
    "Is there a white square at the start of the video?",
]


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.set_defaults(config="demo")
    p.add_argument("--appearances", type=int, default=None, help="squares appearing in the latency scene")
    return p


def run(args) -> dict:
    from bench.common import set_threads
    from heron.config import load_pipeline_config
    from heron.models import load_model
    from heron.pipeline.answer import AnswerStage, MediaRef, ScoreRequest
    from heron.pipeline.decode import VideoDecoder
    from heron.pipeline.encode import EncodeStage
    from heron.pipeline.fingerprint import encoder_settings
    from heron.state import DialogueStore, LatentStore, RedisConnection, ThrowawayRedis
    from heron.types import MediaChunk

    threads = set_threads(args.threads)
    rounds = args.rounds or (1 if args.quick else 5)
    cfg = load_pipeline_config(args.config)
    if args.device:
        cfg.device = args.device
    model = load_model(cfg.model, device=cfg.device, trainable="none")
    encode = EncodeStage(model)
    camera = make_clip(4 if args.quick else 20, width=640, height=360, fps=15, seed=5)
    windows = list(VideoDecoder(str(camera), cfg.decode))
    window_s = cfg.decode.window_frames / cfg.decode.fps
    with ThrowawayRedis() as server:
        db = RedisConnection(server.url)
        latents = LatentStore(db, encoder_settings(cfg))
        stage = AnswerStage(model, latents, DialogueStore(db), cfg.answer)
        chunk = encode([windows[0]])[0]
        for s in range(8):
            latents.put_chunk(MediaChunk(f"cam-{s}", 0, chunk.t_start, chunk.t_end, chunk.latents))
        requests = [
            ScoreRequest(f"<image>Question: {q} Answer:", (MediaRef(f"cam-{s}", chunk.t_start, chunk.t_end),))
            for s in range(8)
            for q in QUESTIONS
        ]
        log(f"watch scoring: {len(requests)} questions, batched vs one by one, {rounds} rounds")
        scoring = interleaved(
            {
                "batched: one call for 8 streams x 4 watches": lambda: stage.score(requests),
                "one by one: 32 calls": lambda: [stage.score([r]) for r in requests],
            },
            rounds,
        )

        log("one stream's cost per window on one core: decode, encode, score 4 watches")
        decode_s = _decode_seconds(camera, cfg)
        video_s = len(windows) * window_s
        encode_times = interleaved({"encode": lambda: encode([windows[1]])}, rounds * 3)["encode"]
        score_times = interleaved({"score": lambda: stage.score(requests[:4])}, rounds * 3)["score"]
    per_window = decode_s / len(windows) + median(encode_times) + median(score_times)
    per_core = window_s / per_window

    latency = _alert_latency(cfg, args)
    batched, single = (median(scoring[k]) for k in scoring)
    table = Table(
        f"Live streams ({args.config}: {window_s:g}-s windows, {model.encoder.num_latents} latents; "
        f"cpu, {threads} torch thread)",
        ["measure", "value", "rounds min–max"],
    )
    for name, values in scoring.items():
        table.add(f"watch scoring, {name} (s)", median(values), spread(values))
    table.add("scoring speed-up, batched / one by one", single / batched, "-")
    table.add("per window: decode 640x360 15 fps (s)", decode_s / len(windows), "-")
    table.add("per window: encode (s)", median(encode_times), spread(encode_times))
    table.add("per window: score 4 watches (s)", median(score_times), spread(score_times))
    table.add("streams one core keeps up with in real time", per_core, "-")
    if latency:
        table.add(f"alert latency p50 (s), {len(latency)} appearances", statistics.median(latency), spread(latency))
        table.add("alert latency p99 (s)", float(np.percentile(latency, 99)), "-")
    table.notes += [
        f"decode: {video_s:.0f} s of video in {decode_s:.2f} s",
        machine_line(),
        reproduce_line(SCRIPT, args, ["config", "device", "threads", "rounds", "appearances"]),
    ]
    p50 = statistics.median(latency) if latency else float("nan")
    table.headline = (
        f"HEADLINE live: alert latency p50 {p50:.2f} s; {per_core:.1f} streams per core in real time; "
        f"batched watch scoring {single / batched:.1f}x one by one"
    )
    print(table.render(), flush=True)
    return {"alert_p50_s": p50, "streams_per_core": per_core, "scoring_speedup": single / batched}


def _decode_seconds(camera: Path, cfg) -> float:
    from heron.pipeline.decode import VideoDecoder

    clock = time.perf_counter()
    for _ in VideoDecoder(str(camera), cfg.decode):
        pass
    return time.perf_counter() - clock


def _alert_latency(cfg, args) -> list[float]:
    """Seconds from a square coming on screen to its alert being read, over a real-time stream."""
    from heron.data.video_writer import write_video
    from heron.service import Heron
    from heron.state import ThrowawayRedis

    count = args.appearances or (2 if args.quick else 8)
    period = 5.0
    appears = [(2.0 + i * period, 2.0 + i * period + 2.5) for i in range(count)]
    frames = _scene(2.0 + count * period + 1, appears)
    video = write_video(
        Path(make_clip(1, width=32, height=32, fps=4).parent) / f"appear-{count}.mp4",
        frames,
        fps=8,
        gop=8,
        options={"bf": "0"},
    )
    log(f"alert latency: {count} appearances over {frames.shape[0] / 8:.0f} s of a real-time stream")
    latencies = []
    with ThrowawayRedis() as server, Heron(cfg, redis_url=server.url, progress=False) as heron:
        heron.warm_up()
        watch = heron.streams.make_watch(QUESTIONS[0], watch_id="red", cooldown_s=1.0)
        stream = heron.streams.start(str(video), realtime=True, watches=[watch])
        cursor, deadline = "0-0", time.monotonic() + frames.shape[0] / 8 + 120
        while time.monotonic() < deadline:
            for alert in heron.alerts.wait({stream: cursor}, timeout_s=0.5):
                cursor = alert.alert_id
                if alert.data["kind"] == "open":
                    started_at = heron.streams.store.get(stream)["started_at"]
                    shown = min(
                        (a for a, _ in appears if a <= alert.data["start"] + 2.0),
                        key=lambda a: abs(a - alert.data["start"]),
                    )
                    latencies.append(time.time() - (started_at + shown))
            if heron.streams.status(stream)["status"] in ("ended", "failed"):
                break
    return latencies


def _scene(seconds: float, appears) -> np.ndarray:
    from heron.data.scenes import appearing_square_frames

    return appearing_square_frames(seconds, appears)


def main(argv: list[str] | None = None) -> dict:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
