"""``heron data synth``: datasets."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from heron.cli import options
from heron.cli.output import Output
from heron.text import plural, seconds

app = typer.Typer(help="make datasets: `heron data synth --help`", no_args_is_help=True)


@app.command("synth")
def synth(
    ctx: typer.Context,
    out_dir: Annotated[str, typer.Option("--out", help="output folder; the split goes to OUT/SPLIT/")],
    n: Annotated[int, typer.Option("--n", help="number of clips (not questions)")],
    seed: Annotated[int, typer.Option("--seed", help="base seed (>= 0) of the clip seeds")] = 0,
    split: Annotated[str, typer.Option("--split", help="train, val or test")] = "train",
    size: Annotated[int, typer.Option("--size", help="frame width = height, px (even)")] = 96,
    frames: Annotated[int, typer.Option("--frames", help="frames per clip")] = 16,
    fps: Annotated[float, typer.Option("--fps", help="frames per second")] = 8.0,
    questions_per_clip: Annotated[
        int | None, typer.Option("--questions-per-clip", help="categories asked per clip [default: all]")
    ] = None,
    long: Annotated[
        bool, typer.Option("--long", help="long videos with a few events at known times (docs/long_videos.md)")
    ] = False,
    minutes: Annotated[
        str, typer.Option("--minutes", help="with --long: video length in minutes, or a range MIN-MAX")
    ] = "5",
    events: Annotated[str, typer.Option("--events", help="with --long: events per video, or a range MIN-MAX")] = "3-5",
    json: options.Json = False,
    debug: options.Debug = False,
) -> None:
    """Generate synthetic video question-answer clips: coloured shapes that move, appear and vanish (docs/data.md)."""
    from heron.data.synthetic import CATEGORIES, ClipConfig, generate_dataset

    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    started = time.perf_counter()
    clip = ClipConfig(size=size, num_frames=frames, fps=fps)
    if long:
        from heron.data.synthetic.long import LongConfig, generate_long_dataset

        low, high = _range(minutes, float, "--minutes")
        few, many = _range(events, int, "--events")
        cfg = LongConfig(duration_s=(low * 60, high * 60), events=(few, many), window_s=frames / fps, clip=clip)
        manifest = generate_long_dataset(out_dir, n, seed, split=split, cfg=cfg, progress=out.interactive)
    else:
        manifest = generate_dataset(
            out_dir,
            n,
            seed,
            split=split,
            clip=clip,
            questions_per_clip=questions_per_clip or len(CATEGORIES),
            progress=out.interactive,
        )
    with open(manifest) as f:
        questions = sum(1 for _ in f)
    took = time.perf_counter() - started
    if out.json:
        out.emit_json({"manifest": str(manifest), "clips": n, "questions": questions, "seconds": round(took, 2)})
    else:
        what = plural(n, "long video") if long else plural(n, "clip")
        out.print(
            f"wrote {what}, {plural(questions, 'question')} ({split}, seed {seed}) to {manifest} in {seconds(took)}"
        )


def _range(text: str, kind, option: str) -> tuple:
    """``"5"`` → (5, 5); ``"5-60"`` → (5, 60); anything else is one line naming the option."""
    from heron.data.synthetic import SyntheticConfigError

    try:
        parts = [kind(p) for p in text.split("-")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise SyntheticConfigError(f"{option} must be a number or a range MIN-MAX, got {text!r}")
    return parts[0], parts[-1]
