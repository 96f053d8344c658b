"""`make demo`: make a sample clip, then ask Heron about it through `heron ask`, end to end.

Uses the shipped demo model (models/demo, trained on the synthetic benchmark; see
docs/training.md) when it is present, else the random-init tiny preset, whose answers are
noise: it still exercises every stage (Ray actors, embedded Redis, the latents cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from heron.cli import main as heron_cli
from heron.config import config_dir, load_pipeline_config
from heron.data.synthetic import ClipConfig, generate_clip, make_questions
from heron.data.video_writer import write_video
from heron.service import Heron

DEMO_DIR = Path(".heron/demo")
DEMO_SEED = 7


def demo_config() -> str:
    """The `demo` preset when the trained demo model is shipped, else `tiny`."""
    shipped = (config_dir() / "demo.yaml").exists() and (config_dir().parent / "models/demo/heron.yaml").exists()
    return "demo" if shipped else "tiny"


def make_clip(directory: Path = DEMO_DIR) -> tuple[Path, list[dict]]:
    """A synthetic clip (coloured shapes) with its questions and true answers."""
    rng = np.random.default_rng(DEMO_SEED)
    cfg = ClipConfig()
    frames, meta = generate_clip(rng, cfg)
    directory.mkdir(parents=True, exist_ok=True)
    return write_video(directory / "demo.mp4", frames, fps=cfg.fps), make_questions(meta, rng)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m heron.demo",
        description="Make a sample clip and ask Heron about it through `heron ask` (what `make demo` runs).",
    ).parse_args(argv)
    config = demo_config()
    video, questions = make_clip()
    print(f"sample clip: {video} (preset: {config})")
    if config == "tiny":
        print("note: models/demo is missing, so the untrained tiny model answers (noise); see docs/training.md")
    first = questions[0]["question"]
    print(f'\n$ heron ask {video} "{first}" --config {config}')
    code = heron_cli(["ask", str(video), first, "--config", config])
    if code:
        return code
    print(f"  expected: {questions[0]['answer']}")
    correct = 0
    with Heron(load_pipeline_config(config), progress=False) as heron:  # the same service, kept warm
        for qa in questions:
            answer = heron.ask(str(video), qa["question"]).answer.text
            ok = answer.lower().strip(" .") == qa["answer"]
            correct += ok
            print(f"\nQ: {qa['question']}\nA: {answer}   (expected: {qa['answer']}) {'✓' if ok else '✗'}")
    print(f"\n{correct}/{len(questions)} answers correct (cached: the clip was decoded and encoded once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
