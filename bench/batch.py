"""Archive batches: `heron batch` over ~50 short videos vs the same work asked one by one.

    .venv/bin/python bench/batch.py              # bench-cpu preset, 50 videos of 6 s, 2 questions each

1. One by one: each video's questions asked in turn through a warm ``Heron`` (``heron.ask``), as a
   user looping over an archive would; then the batch (``BatchRun``, what ``heron batch`` runs)
   over as many other videos of the same kind (uncached both: other bytes), on the same warm
   Heron. Archive throughput = video seconds answered per wall second.
2. The cost of resuming the finished batch (the same command again): nothing is recomputed.

Both use one Heron whose actors fit 2 cores (decode, encode and answer actors at 0.5 CPU each);
the batch keeps ``--parallel`` videos in flight, each with its own decode actor.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Table, base_parser, log, machine_line, make_clip, reproduce_line

SCRIPT = "bench/batch.py"
QUESTIONS = ["What moves?", "What color is the square?"]


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=None, help="videos per variant [default: 50; quick: 6]")
    p.add_argument("--seconds", type=float, default=6.0, help="length of each video, s")
    p.add_argument("--parallel", type=int, default=2, help="videos in flight in the batch")
    return p


def run(args) -> dict:
    from heron.config import ActorResources, load_pipeline_config
    from heron.pipeline.inputs import build_items
    from heron.service import Heron
    from heron.service.batch import BatchRun
    from heron.service.runtime import init_ray
    from heron.state.server import ThrowawayRedis

    count = args.videos or (6 if args.quick else 50)
    cfg = load_pipeline_config(args.config)
    if args.device:
        cfg.device = args.device
    half = ActorResources(num_cpus=0.5, num_gpus=cfg.ingest.encode.num_gpus)
    cfg.ingest = dataclasses.replace(
        cfg.ingest, decode=ActorResources(num_cpus=0.5), encode=half, parallel_ingests=args.parallel
    )
    cfg.answer.actor = dataclasses.replace(cfg.answer.actor, num_cpus=0.5, max_concurrency=64)
    log(f"making {2 * count} clips of {args.seconds:g} s")
    one_by_one = [make_clip(args.seconds, width=320, height=240, fps=15, seed=1000 + i) for i in range(count)]
    batched = [make_clip(args.seconds, width=320, height=240, fps=15, seed=2000 + i) for i in range(count)]
    video_s = count * args.seconds
    init_ray()
    with ThrowawayRedis() as redis_server, Heron(cfg, redis_url=redis_server.url, progress=False) as heron:
        heron.warm_up()
        heron.ask(str(make_clip(2, width=320, height=240, fps=15, seed=999)), QUESTIONS[0])  # actors started
        log(f"one by one: {count} videos x {len(QUESTIONS)} questions")
        clock = time.perf_counter()
        for video in one_by_one:
            for question in QUESTIONS:
                heron.ask(str(video), question)
        sequential_s = time.perf_counter() - clock

        log(f"batch: {count} other videos, {args.parallel} in flight")
        items = build_items([(str(v), [], None, None) for v in batched], QUESTIONS)
        clock = time.perf_counter()
        summary = BatchRun(heron, items, job_id="bench", videos_in_flight=args.parallel).run()
        batch_s = time.perf_counter() - clock
        if summary.done != len(items):
            raise RuntimeError(f"the batch answered {summary.done} of {len(items)}: {summary}")

        clock = time.perf_counter()
        again = BatchRun(heron, items, job_id="bench", videos_in_flight=args.parallel).run()
        resume_s = time.perf_counter() - clock
        if again.skipped != len(items):
            raise RuntimeError(f"resuming recomputed {len(items) - again.skipped} answers")

    speedup = sequential_s / batch_s
    table = Table(
        f"Archive batch: {count} videos x {len(QUESTIONS)} questions, {args.seconds:g} s each, 320x240 15 fps "
        f"({args.config})",
        ["way", "wall s", "video-s/s", "vs one by one"],
    )
    table.add("one by one (warm Heron, heron.ask)", sequential_s, video_s / sequential_s, 1.0)
    table.add(f"heron batch ({args.parallel} videos in flight)", batch_s, video_s / batch_s, speedup)
    table.add("resume the finished batch", resume_s, "-", "-")
    table.notes += [
        "one Heron for both (decode, encode, answer actors at 0.5 CPU); both uncached (other bytes)",
        reproduce_line(SCRIPT, args, ["config", "device", "videos", "seconds", "parallel"]),
        machine_line(),
    ]
    table.headline = (
        f"HEADLINE batch: {speedup:.2f}x one by one ({video_s / batch_s:.1f} vs {video_s / sequential_s:.1f} "
        f"video-s/s); resuming a finished job {resume_s:.2f} s"
    )
    print(table.render(), flush=True)
    return {
        "speedup": speedup,
        "batch_video_s_per_s": video_s / batch_s,
        "sequential_video_s_per_s": video_s / sequential_s,
        "resume_s": resume_s,
    }


def main(argv: list[str] | None = None) -> dict:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
