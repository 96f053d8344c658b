"""Ingest throughput: decode-only, encode-only and the whole pipeline, side by side in one run.

    .venv/bin/python bench/ingest.py                      # bench-cpu preset, 120 s 360p30 clip
    .venv/bin/python bench/ingest.py --config bench-gpu --clip-seconds 120 --width 1920 --height 1080

(a) decode-only: the pipeline's own VideoDecoder and sampling (decord for files), plus three other
    strategies for comparison: PyAV sequential with frame dropping, PyAV seek per sampled frame,
    and keyframe-only decoding (FFmpeg skips non-key frames: skip_frame = "NONKEY").
(b) encode-only: the encode stage (vision backbone + resampler) on frames decoded beforehand,
    in the batches the pipeline uses (ingest.windows_per_call windows per call).
(c) the pipeline: ``Heron.ingest`` — Ray decode actor(s) → encode actor(s) → Redis (throwaway server).

The headline is pipeline / min(decode, encode): how close the pipeline gets to its slowest stage.
With ``ingest.decode_actors: k`` the decode side counts as k x one decoder (perfect scaling).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Table, base_parser, interleaved, log, machine_line, make_clip, median, reproduce_line, spread

SCRIPT = "bench/ingest.py"
ACTOR_START = "pipeline part: start a decode actor (a first ingest only)"


# --- decode strategies ---------------------------------------------------------------------------


def decode_pipeline(clip: Path, cfg) -> tuple[int, int, str]:
    """The pipeline's decoder: (frames decoded, frames kept, decoder name)."""
    from heron.pipeline.decode import VideoDecoder

    decoder = VideoDecoder(clip, cfg)
    for _ in decoder:
        pass
    return decoder.stats.frames_decoded, decoder.stats.frames_kept, decoder.stats.decoder


def decode_seek_per_frame(clip: Path, cfg) -> tuple[int, int, str]:
    """PyAV: for every sample time t_k = t0 + k / fps, seek back to a keyframe and decode up to t_k."""
    import av

    from heron.pipeline.decode import output_size

    decoded = kept = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        height, width = output_size(stream.codec_context.width, stream.codec_context.height, cfg.size)
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        duration = float(stream.duration * stream.time_base)
        for k in range(math.ceil(duration * cfg.fps - 1e-9)):
            target = start + k / cfg.fps
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                decoded += 1
                if frame.time >= target - 1e-6:
                    frame.to_ndarray(width=width, height=height, format="rgb24")
                    kept += 1
                    break
    return decoded, kept, "pyav-seek"


def decode_keyframes(clip: Path, cfg) -> tuple[int, int, str]:
    """PyAV with FFmpeg skipping every non-key frame; keyframes are kept by the 1/fps sampling rule."""
    import av

    from heron.pipeline.decode import output_size

    decoded = kept = 0
    next_time = -math.inf
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = "NONKEY"
        height, width = output_size(stream.codec_context.width, stream.codec_context.height, cfg.size)
        for frame in container.decode(stream):
            decoded += 1
            if frame.time >= next_time - 1e-6:
                frame.to_ndarray(width=width, height=height, format="rgb24")
                kept += 1
                next_time = frame.time + 1.0 / cfg.fps
    return decoded, kept, "pyav-keyframes"


def decode_strategies(clip: Path, cfg) -> dict[str, callable]:
    pyav = dataclasses.replace(cfg, decoder="pyav")
    return {
        "decode: pipeline decoder (sequential, drop)": lambda: decode_pipeline(clip, cfg),
        "decode: PyAV sequential, drop": lambda: decode_pipeline(clip, pyav),
        "decode: PyAV seek per sampled frame": lambda: decode_seek_per_frame(clip, cfg),
        "decode: PyAV keyframes only (NONKEY)": lambda: decode_keyframes(clip, cfg),
    }


# --- the benchmark --------------------------------------------------------------------------------


def run(args) -> dict:
    import ray
    import torch

    from heron.actors import DecodeRun, RemoteDecodeActor, actor_options
    from heron.config import load_pipeline_config
    from heron.models import load_encoder
    from heron.pipeline.decode import VideoDecoder
    from heron.pipeline.encode import EncodeStage
    from heron.service import Heron
    from heron.state.server import ThrowawayRedis

    cfg = load_pipeline_config(args.config)
    if args.device:
        cfg.device = args.device
    log(f"clip: {args.clip_seconds:g} s {args.width}x{args.height} {args.fps} fps")
    clip = make_clip(args.clip_seconds, width=args.width, height=args.height, fps=args.fps, gop_s=args.gop_s)
    duration = VideoDecoder(clip, cfg.decode).info.duration

    # Encode-only input: the pipeline's own windows, decoded once, outside any timing.
    windows = list(VideoDecoder(clip, cfg.decode))
    per_call = cfg.ingest.windows_per_call
    stage = EncodeStage(load_encoder(cfg.model, device=cfg.device))  # what the encode actor holds
    cores = os.cpu_count() or 1
    encoders = {"encode: stage, 1 thread": 1, **({f"encode: stage, {cores} threads": cores} if cores > 1 else {})}

    def encode_all(n_threads: int) -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(n_threads)
        try:
            for i in range(0, len(windows), per_call):
                stage(windows[i : i + per_call])
            if torch.cuda.is_available() and next(stage.model.parameters()).is_cuda:
                torch.cuda.synchronize()
        finally:
            torch.set_num_threads(previous)

    encode_all(cores)  # warm-up (allocator, kernels)
    strategies = decode_strategies(clip, cfg.decode)
    counts = {name: fn() for name, fn in strategies.items()}  # also a warm-up of the file cache

    log("starting Ray and a throwaway Redis for the pipeline")
    with ThrowawayRedis() as server, Heron(cfg, redis_url=server.url, progress=False) as heron:
        first = heron.ingest(str(clip))  # warm-up: starts Ray and loads the encode actor(s)
        source_id = first.source_id
        reports = []

        def pipeline() -> None:
            heron.latents.clear_source(source_id)
            reports.append(heron.ingest(str(clip)))

        def start_decode_actor() -> None:
            # What a first ingest pays before its first window: a fresh decode actor process.
            run = DecodeRun(str(clip), source_id, None, None)
            actor = RemoteDecodeActor.options(**actor_options(cfg.ingest.decode)).remote(cfg.decode)
            ray.get(actor.finish.remote(run))  # a fresh actor has no run: finish only waits for the start
            ray.kill(actor)

        variants = {
            **{name: (lambda fn=fn: fn()) for name, fn in strategies.items()},
            **{name: (lambda n=n: encode_all(n)) for name, n in encoders.items()},
            "pipeline: Ray decode → encode → Redis": pipeline,
            ACTOR_START: start_decode_actor,
        }
        log(f"measuring {len(variants)} variants x {args.rounds} interleaved rounds")
        times = interleaved(variants, args.rounds)
    sampled = sum(len(w.frames) for w in windows)
    counts |= {name: (0, sampled, "") for name in encoders}
    report = reports[-1]
    counts["pipeline: Ray decode → encode → Redis"] = (report.frames_decoded, report.frames_sampled, report.decoder)
    counts[ACTOR_START] = (0, 0, "")

    table = Table(
        f"Ingest: {duration:.0f} s clip, {args.width}x{args.height} H.264 {args.fps} fps, keyframe every "
        f"{args.gop_s:g} s; sampled at {cfg.decode.fps:g} fps, {cfg.decode.window_frames}-frame windows, "
        f"size {cfg.decode.size}; model {cfg.model}",
        [
            "variant",
            "decoder",
            "decoded",
            "kept",
            "s (median)",
            "rounds min–max",
            "video-s/s",
            "kept frames/s",
            "decoded frames/s",
        ],
    )
    rates = {}
    for name, seconds in times.items():
        decoded, kept, decoder = counts[name]
        t = median(seconds)
        if name == ACTOR_START:
            table.add(name, "-", "-", "-", t, spread(seconds), "-", "-", "-")
            continue
        rates[name] = duration / t
        table.add(
            name,
            decoder or "-",
            decoded or "-",
            kept,
            t,
            spread(seconds),
            duration / t,
            kept / t,
            decoded / t if decoded else "-",
        )
    decode_one = rates["decode: pipeline decoder (sequential, drop)"]
    # ingest.decode_actors read runs of windows in parallel: their ideal is k x one decoder's rate
    actors = report.decode_actors
    decode = decode_one * actors
    encode = max(rates[name] for name in encoders)  # the stage's best on this machine
    pipe = rates["pipeline: Ray decode → encode → Redis"]
    bound = min(decode, encode)  # encode: the faster of its thread counts
    shared = 1.0 / (1.0 / decode + 1.0 / encode)  # both stages on the same cores, no overlap gain
    table.notes += [
        "decode actors are pooled: the timed ingests reuse those the warm-up ingest started; a "
        f"first ingest also pays their start ({median(times[ACTOR_START]):.2g} s, in parallel)",
        f"bound = min(decode, encode) = {bound:.3g} video-s/s; if decode and encode share the same cores "
        f"(CPU-only machine) the bound is 1/(1/decode + 1/encode) = {shared:.3g} video-s/s "
        f"(pipeline reaches {pipe / shared:.2f} of it)",
        f"pipeline's last report: {report.summary()}",
        *(
            [
                f"decode = {actors} decode actors x one decoder's {decode_one:.3g} video-s/s (perfect scaling: "
                f"an upper bound, so the ratio is conservative)"
            ]
            if actors > 1
            else []
        ),
        machine_line(),
        reproduce_line(SCRIPT, args, ["config", "device", "clip_seconds", "width", "height", "fps", "gop_s", "rounds"]),
    ]
    ratio = pipe / bound
    table.headline = (
        f"HEADLINE ingest: pipeline / min(decode, encode) = {ratio:.2f}  "
        f"(pipeline {pipe:.3g} video-s/s; target >= {args.target:g})"
    )
    print(table.render(), flush=True)
    return {
        "decode_video_s_per_s": decode,
        "encode_video_s_per_s": encode,
        "pipeline_video_s_per_s": pipe,
        "ratio": ratio,
        "shared_bound_ratio": pipe / shared,
        "rates": rates,
        "counts": counts,
    }


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--clip-seconds", type=float, default=120.0, help="length of the generated clip (s)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=30, help="the clip's own frame rate")
    p.add_argument("--gop-s", type=float, default=2.0, help="keyframe interval of the clip (s)")
    p.add_argument("--target", type=float, default=0.8, help="target for the headline ratio (printed only)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.quick:
        args.clip_seconds, args.width, args.height = min(args.clip_seconds, 16.0), 160, 96
    args.rounds = args.rounds or (1 if args.quick else 3)
    return run(args)


if __name__ == "__main__":
    main()
