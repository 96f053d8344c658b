"""Command-line entry points of training (wired into ``heron`` as subcommands).

    heron train CONFIG [--output-dir DIR] [--no-resume]          the stages of CONFIG's train: section
    heron eval MODEL_DIR DATA_DIR [--json] [--ablate time-embeddings] [--split test] [--limit N]
    heron pretrain CONFIG                                          data + tiny backbones (pretrain: section)
    python -m heron.train.cli demo-model [--config configs/demo.yaml] [--force]   the whole demo recipe

Each ``*_main(argv) -> int`` returns the exit status: 0, or a HeronError's exit code after a
one-line message on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from heron.errors import HeronError


def _run(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "debug", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is happening; theirs flash per save/load
    hf_logging.set_verbosity_error()
    try:
        return fn(args)
    except HeronError as error:
        if getattr(args, "debug", False):
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


def train_parser(prog: str = "heron train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Train Heron: the stages of a config's train: section.")
    parser.add_argument("config", help="YAML file (or preset name) with model: and train: sections")
    parser.add_argument("--output-dir", help="override train.output_dir")
    parser.add_argument("--no-resume", action="store_true", help="start every stage afresh, ignoring checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="tracebacks and debug logs")
    return parser


def _train(args) -> int:
    from heron.train.config import load_run_config
    from heron.train.trainer import Trainer

    run = load_run_config(args.config)
    if args.output_dir:
        run.train.output_dir = args.output_dir
    if args.quiet:
        run.train.progress = False
    final = Trainer(run).fit(resume=not args.no_resume)
    print(f"trained model: {final}")
    return 0


def train_main(argv: list[str] | None = None) -> int:
    return _run(_train, train_parser().parse_args(argv))


def eval_parser(prog: str = "heron eval") -> argparse.ArgumentParser:
    from heron.train.evaluate import ABLATIONS

    parser = argparse.ArgumentParser(prog=prog, description="Accuracy per question category on a synthetic QA set.")
    parser.add_argument("model_dir", help="a saved Heron model directory (or preset name)")
    parser.add_argument("data_dir", help="a manifest.jsonl, a split folder, or a dataset root with SPLIT/")
    parser.add_argument("--split", default="test", help="split folder to use under a dataset root (default: test)")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument("--out", help="also write the JSON report to this file")
    parser.add_argument(
        "--ablate", action="append", default=[], choices=ABLATIONS, help="also run with this part zeroed (repeatable)"
    )
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-choices", action="store_true", help="skip closed-choice scoring")
    parser.add_argument("--fps", type=float, help="decode fps (default: the model's training.json)")
    parser.add_argument("--window-frames", type=int, help="frames per window (default: training.json)")
    parser.add_argument("--size", type=int, help="decode short side, px (default: training.json)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the model's)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the tiny ops run faster on one; 0 = torch's default)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true")
    return parser


def _eval(args) -> int:
    import dataclasses

    import torch

    import heron
    from heron.config import DecodeConfig
    from heron.train.evaluate import decode_config_of, evaluate, format_report, read_questions

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    decode = decode_config_of(args.model_dir) or DecodeConfig()
    overrides = {
        k: v
        for k, v in (("fps", args.fps), ("window_frames", args.window_frames), ("size", args.size))
        if v is not None
    }
    decode = dataclasses.replace(decode, **overrides)
    model = heron.load_model(args.model_dir, trainable="none", device=args.device)
    questions = read_questions(args.data_dir, split=args.split, limit=args.limit)
    report, _ = evaluate(
        model,
        questions,
        decode,
        ablations=tuple(args.ablate),
        batch_size=args.batch_size,
        score_choices=not args.no_choices,
        progress=not (args.quiet or args.json),
    )
    report["model"], report["data"] = str(args.model_dir), str(args.data_dir)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def eval_main(argv: list[str] | None = None) -> int:
    return _run(_eval, eval_parser().parse_args(argv))


def pretrain_parser(prog: str = "heron pretrain") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Synthetic data and tiny backbones from scratch "
        "(a config's pretrain: section), before heron train.",
    )
    parser.add_argument("config")
    parser.add_argument("--force", action="store_true", help="redo phases whose outputs exist")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--debug", action="store_true")
    return parser


def _pretrain(args) -> int:
    import torch

    from heron.errors import ConfigError
    from heron.train.config import load_run_config
    from heron.train.recipe import make_data, pretrain_backbones

    run = load_run_config(args.config)
    if run.pretrain is None:
        raise ConfigError(f"{args.config} has no 'pretrain:' section")
    if run.train.threads > 0:
        torch.set_num_threads(run.train.threads)
    manifests = make_data(run, force=args.force, progress=not args.quiet)
    times = pretrain_backbones(run, manifests, force=args.force, progress=not args.quiet)
    print(
        "pretrained: "
        + ", ".join(
            f"{k} {v:.0f} s" if v is not None else f"{k} (already there; --force redoes it)" for k, v in times.items()
        )
    )
    return 0


def pretrain_main(argv: list[str] | None = None) -> int:
    return _run(_pretrain, pretrain_parser().parse_args(argv))


def demo_model_parser(prog: str = "heron demo-model") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Build the demo model from scratch: data, tiny "
        "backbones, stage 1, stage 2, evaluation (make demo-model).",
    )
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--force", action="store_true", help="redo every phase, ignoring earlier outputs")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--debug", action="store_true")
    return parser


def _demo_model(args) -> int:
    from heron.train.recipe import build_demo_model

    build_demo_model(args.config, force=args.force, progress=not args.quiet)
    return 0


def demo_model_main(argv: list[str] | None = None) -> int:
    return _run(_demo_model, demo_model_parser().parse_args(argv))


_COMMANDS = {"train": train_main, "eval": eval_main, "pretrain": pretrain_main, "demo-model": demo_model_main}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _COMMANDS:
        print(f"usage: python -m heron.train.cli {{{','.join(_COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return _COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
