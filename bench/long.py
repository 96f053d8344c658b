"""Long videos: accuracy per category and evidence recall through the pipeline, by window selection.

    .venv/bin/python bench/long.py --config demo            # 2 videos of 60 min + 4 of 5 min
    .venv/bin/python bench/long.py --config demo --quick    # 1 video of 5 min

Videos from ``heron data synth --long`` (seed 100, never trained on: training uses the long
``train`` split of seed 0), ingested once each through a ``Heron``; every question asked with
``answer.selection`` = hybrid (the default), again with "when" answered by moment retrieval
(``answer.when: retrieval``), and with evenly spaced windows, the old behaviour, on the same
cache. Reported per category: accuracy, and evidence recall (share of answers whose cited spans
overlap the event). Needs a model with retrieval (the demo model).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Table, base_parser, log, machine_line, reproduce_line

SCRIPT = "bench/long.py"
# (selection, when): the default, "when" by moment retrieval, and the old evenly spaced windows
VARIANTS = (("hybrid", "model"), ("hybrid", "retrieval"), ("evenly", "model"))


def parser():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--hour-videos", type=int, default=None, help="60-minute videos [default: 2; quick: 0]")
    p.add_argument("--short-videos", type=int, default=None, help="5-minute videos [default: 4; quick: 1]")
    p.add_argument("--seed", type=int, default=100, help="base seed of the videos")
    return p


def run(args) -> dict:
    from heron.config import load_pipeline_config
    from heron.data.synthetic import ClipConfig
    from heron.data.synthetic.long import LongConfig, generate_long_dataset
    from heron.service import Heron
    from heron.service.evaluate import evaluate_pipeline
    from heron.state.server import ThrowawayRedis
    from heron.train.evaluate import read_questions

    cfg = load_pipeline_config(args.config)
    if args.device:
        cfg.device = args.device
    hours = args.hour_videos if args.hour_videos is not None else (0 if args.quick else 2)
    fives = args.short_videos if args.short_videos is not None else (1 if args.quick else 4)
    window_s = cfg.decode.window_frames / cfg.decode.fps
    clip = ClipConfig(size=96, fps=cfg.decode.fps)
    root = Path(tempfile.mkdtemp(prefix="heron-long-"))
    questions = {}
    for name, n, minutes, split in (("60 min", hours, 60.0, "test"), ("5 min", fives, 5.0, "val")):
        if n:
            log(f"making {n} long videos of {minutes:g} min")
            long = LongConfig(duration_s=(minutes * 60, minutes * 60), window_s=window_s, clip=clip)
            questions[name] = read_questions(generate_long_dataset(root, n, args.seed, split=split, cfg=long))
    reports: dict[tuple[str, str, str], dict] = {}
    with ThrowawayRedis() as server:
        for selection, when in VARIANTS:  # one Heron each: its answer actor holds the settings
            cfg.answer = dataclasses.replace(cfg.answer, selection=selection, when=when)
            with Heron(cfg, redis_url=server.url, progress=False) as heron:  # (the later ones find all cached)
                for name, items in questions.items():
                    log(f"{name}: {len(items)} questions, selection {selection}, when {when}")
                    clock = time.perf_counter()
                    reports[name, selection, when] = report = evaluate_pipeline(heron, items)
                    report["wall_s"] = time.perf_counter() - clock
    table = Table(
        f"Long videos through the pipeline ({args.config}), accuracy / evidence recall",
        ["videos", "selection", "when", "category", "n", "accuracy", "evidence recall"],
    )
    for (name, selection, when), report in reports.items():
        for category, s in list(report["categories"].items()) + [("overall", report["overall"])]:
            recall = "-" if s["evidence_recall"] is None else s["evidence_recall"]
            table.add(name, selection, when, category, s["n"], s["accuracy"], recall)
    table.notes += [
        "hybrid: half evenly spread, half most similar to the question (default); evenly: the old selection",
        "when: model = the window the LM names; retrieval = the window most similar to the question",
        "long_when: right when the answered window is within one window of the event",
        reproduce_line(SCRIPT, args, ["config", "device", "hour_videos", "short_videos", "seed"]),
        machine_line(),
    ]
    longest = "60 min" if "60 min" in questions else next(iter(questions))
    cats = reports[longest, "hybrid", "model"]["categories"]
    when_retrieval = reports[longest, "hybrid", "retrieval"]["categories"].get("long_when", {}).get("accuracy")
    table.headline = (
        f"HEADLINE long videos ({longest}, hybrid): "
        + ", ".join(f"{k.removeprefix('long_')} {v['accuracy']:.2f}" for k, v in cats.items())
        + f"; evidence recall {reports[longest, 'hybrid', 'model']['overall']['evidence_recall']:.2f}"
        + f" (evenly: {reports[longest, 'evenly', 'model']['overall']['evidence_recall']:.2f})"
        + ("" if when_retrieval is None else f"; when by retrieval {when_retrieval:.2f}")
    )
    print(table.render(), flush=True)
    return {
        f"{name}/{selection}/{when}": {k: v for k, v in r.items() if k != "rows"}
        for (name, selection, when), r in reports.items()
    }


def main(argv: list[str] | None = None) -> dict:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
