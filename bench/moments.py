"""Moment questions over several windows: "Is there a red square at the start/end of the video?".

    .venv/bin/python bench/moments.py --config demo

Four 8-s clips in the demo model's world (a red square on screen 2–5 s, 0–3 s, 5–8 s, or all the
time), each asked about its start and its end over ranges of 4, 3, 2 and 1 windows (from 0, 2, 4
and 6 s): 32 questions, the truth read off the scene at the range's first frame or the clip's
last. Asked with ``answer.moments`` on (the window at the moment named) and off (the selection's
windows, here all of the range). Needs a model that answers (the demo model).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Table, base_parser, log, machine_line, reproduce_line

SCRIPT = "bench/moments.py"
SECONDS, FPS = 8, 8
SCENES = {"2-5 s": [(2.0, 5.0)], "0-3 s": [(0.0, 3.0)], "5-8 s": [(5.0, 8.0)], "0-8 s": [(0.0, 8.0)]}
STARTS = (0.0, 2.0, 4.0, 6.0)


def run(args) -> dict:
    from heron.config import load_pipeline_config
    from heron.data.scenes import appearing_square_frames
    from heron.data.video_writer import write_video
    from heron.service import Heron
    from heron.state.server import ThrowawayRedis

    cfg = load_pipeline_config(args.config)
    if args.device:
        cfg.device = args.device
    root = Path(tempfile.mkdtemp(prefix="heron-moments-"))
    clips = {}
    for name, shown in SCENES.items():
        clips[name] = root / f"{name}.mp4"
        write_video(clips[name], appearing_square_frames(SECONDS, shown, fps=FPS), fps=FPS)
    last_frame = SECONDS - 1 / FPS
    results: dict[tuple[bool, int], list[bool]] = {}
    with ThrowawayRedis() as server:
        for moments in (True, False):  # one Heron each: its answer actor holds the setting
            cfg.answer = dataclasses.replace(cfg.answer, moments=moments)
            with Heron(cfg, redis_url=server.url, progress=False) as heron:
                log(f"answer.moments {moments}: {len(SCENES) * 2 * len(STARTS)} questions")
                for name, shown in SCENES.items():
                    for moment in ("start", "end"):
                        for start in STARTS:
                            t = start if moment == "start" else last_frame
                            truth = "yes" if any(a <= t < b for a, b in shown) else "no"
                            question = f"Is there a red square at the {moment} of the video?"
                            answer = heron.ask(str(clips[name]), question, start=start or None).answer
                            windows = round((SECONDS - start) * FPS / cfg.decode.window_frames)
                            results.setdefault((moments, windows), []).append(answer.text.strip().lower() == truth)
    table = Table(
        f"Moment questions over several windows ({args.config}), accuracy",
        ["answer.moments", "windows in the range", "questions", "right", "accuracy"],
    )
    for (on, windows), marks in sorted(results.items(), key=lambda kv: (not kv[0][0], -kv[0][1])):
        table.add(on, windows, len(marks), sum(marks), sum(marks) / len(marks))
    totals = {on: [m for (o, _), marks in results.items() if o == on for m in marks] for on in (True, False)}
    table.notes += [
        "truth: is the square on screen at the range's first frame (start) or the clip's last (end)",
        reproduce_line(SCRIPT, args, ["config", "device"]),
        machine_line(),
    ]
    table.headline = (
        f"HEADLINE moment questions: {sum(totals[True])}/{len(totals[True])} with answer.moments, "
        f"{sum(totals[False])}/{len(totals[False])} without"
    )
    print(table.render(), flush=True)
    return {str(on): sum(marks) / len(marks) for on, marks in totals.items()}


def main(argv: list[str] | None = None) -> dict:
    return run(base_parser(__doc__.splitlines()[0]).parse_args(argv))


if __name__ == "__main__":
    main()
