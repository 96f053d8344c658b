"""``heron data synth``: generate a synthetic video QA split from the command line."""

from __future__ import annotations

import argparse
import sys
import time

from heron.data.synthetic.config import CATEGORIES, SPLITS, ClipConfig
from heron.data.synthetic.dataset import generate_dataset
from heron.errors import HeronError


def build_parser(prog: str = "heron data synth") -> argparse.ArgumentParser:
    """Arguments of ``heron data synth``; ``prog`` names the command in usage messages."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Generate synthetic video question-answer clips (docs/data.md)."
    )
    parser.add_argument("--out", required=True, help="output folder; the split goes to OUT/SPLIT/")
    parser.add_argument("--n", type=int, required=True, help="number of clips (not questions)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (>= 0) of the clip seeds")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--size", type=int, default=96, help="frame width = height, px (even)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--fps", type=float, default=8.0, help="frames per second")
    parser.add_argument("--questions-per-clip", type=int, default=len(CATEGORIES), help="categories asked per clip")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status: 0, or a HeronError's exit code after a one-line
    message on stderr. Prints a progress bar, then a one-line summary."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        cfg = ClipConfig(size=args.size, num_frames=args.frames, fps=args.fps)
        manifest = generate_dataset(
            args.out,
            args.n,
            args.seed,
            split=args.split,
            clip=cfg,
            questions_per_clip=args.questions_per_clip,
            progress=True,
        )
    except HeronError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    with open(manifest) as f:
        questions = sum(1 for _ in f)
    seconds = time.perf_counter() - started
    # The one-line summary is the command's output, so it is printed, not logged.
    print(
        f"wrote {args.n} clips, {questions} questions ({args.split}, seed {args.seed}) to {manifest} in {seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
