"""``heron train | eval | pretrain | demo-model``: training, evaluation and the demo recipe (docs/training.md)."""

from __future__ import annotations

import dataclasses
import json as jsonlib
from typing import Annotated

import typer

from heron.cli import options
from heron.cli.output import Output

Quiet = Annotated[bool, typer.Option("--quiet", help="no progress bars")]


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is happening; theirs flash per save/load
    hf_logging.set_verbosity_error()


def train(
    ctx: typer.Context,
    config: Annotated[str, typer.Argument(help="YAML file (or preset name) with model: and train: sections")],
    output_dir: Annotated[str | None, typer.Option("--output-dir", help="override train.output_dir")] = None,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="start every stage afresh, ignoring checkpoints")
    ] = False,
    quiet: Quiet = False,
    debug: options.Debug = False,
) -> None:
    """Train Heron: the stages of a config's train: section (stage 1 connector, stage 2 end to end)."""
    from heron.train.config import load_run_config
    from heron.train.trainer import Trainer

    out: Output = ctx.obj
    out.configure(debug=debug)
    _quiet_transformers()
    run = load_run_config(config)
    if output_dir:
        run.train.output_dir = output_dir
    if quiet:
        run.train.progress = False
    final = Trainer(run).fit(resume=not no_resume)
    out.print(f"trained model: {final}")


def evaluate(
    ctx: typer.Context,
    model_dir: Annotated[str, typer.Argument(help="a saved Heron model directory (or preset name)")],
    data_dir: Annotated[str, typer.Argument(help="a manifest.jsonl, a split folder, or a dataset root with SPLIT/")],
    split: Annotated[str, typer.Option("--split", help="split folder under a dataset root")] = "test",
    out_file: Annotated[str | None, typer.Option("--out", help="also write the JSON report to this file")] = None,
    ablate: Annotated[
        list[str] | None, typer.Option("--ablate", help="also run with this part zeroed: time-embeddings (repeatable)")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="only the first N questions")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="questions per forward pass")] = 64,
    no_choices: Annotated[bool, typer.Option("--no-choices", help="skip closed-choice scoring")] = False,
    fps: Annotated[float | None, typer.Option("--fps", help="decode fps [default: the model's training.json]")] = None,
    window_frames: Annotated[
        int | None, typer.Option("--window-frames", help="frames per window [default: training.json]")
    ] = None,
    size: Annotated[int | None, typer.Option("--size", help="decode short side, px [default: training.json]")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, ... [default: the model's]")] = None,
    threads: Annotated[int, typer.Option("--threads", help="torch CPU threads (0: torch's default)")] = 1,
    pipeline: Annotated[
        bool,
        typer.Option(
            "--pipeline", help="ask through the whole pipeline (Redis cache, window selection); on for long videos"
        ),
    ] = False,
    selection: Annotated[
        str | None, typer.Option("--selection", help="with --pipeline: evenly, similar or hybrid [default: config's]")
    ] = None,
    when: Annotated[
        str | None,
        typer.Option("--when", help="with --pipeline: 'when' answers by model or retrieval [default: config's]"),
    ] = None,
    config: options.Config = None,
    redis_url: options.RedisUrl = None,
    json: options.Json = False,
    quiet: Quiet = False,
    debug: options.Debug = False,
) -> None:
    """Accuracy per question category on a synthetic QA set, as the pipeline answers."""
    import torch

    import heron
    from heron.config import DecodeConfig
    from heron.errors import ConfigError
    from heron.train.evaluate import ABLATIONS, decode_config_of, format_report, read_questions
    from heron.train.evaluate import evaluate as run_evaluation

    out: Output = ctx.obj
    out.configure(json=json, debug=debug)
    _quiet_transformers()
    unknown = sorted(set(ablate or []) - set(ABLATIONS))
    if unknown:
        raise ConfigError(f"unknown --ablate {', '.join(unknown)} (known: {', '.join(ABLATIONS)})")
    if threads > 0:
        torch.set_num_threads(threads)
    questions = read_questions(data_dir, split=split, limit=limit)  # a missing dataset fails before the model loads
    if pipeline or any(q.category.startswith("long_") for q in questions):
        from heron.service.evaluate import format_pipeline_report

        report = _evaluate_pipeline(out, config, model_dir, questions, selection, when, redis_url, quiet or json)
        _emit_report(out, report, model_dir, data_dir, out_file, format_pipeline_report)
        return
    decode = decode_config_of(model_dir) or DecodeConfig()
    overrides = {k: v for k, v in (("fps", fps), ("window_frames", window_frames), ("size", size)) if v is not None}
    decode = dataclasses.replace(decode, **overrides)
    model = heron.load_model(model_dir, trainable="none", device=device)
    report, _ = run_evaluation(
        model,
        questions,
        decode,
        ablations=tuple(ablate or ()),
        batch_size=batch_size,
        score_choices=not no_choices,
        progress=not (quiet or json),
    )
    _emit_report(out, report, model_dir, data_dir, out_file, format_report)


def _emit_report(out: Output, report: dict, model_dir, data_dir, out_file, formatter) -> None:
    """An eval report, named by model and data: to ``--out`` if given, then as JSON or a table."""
    report["model"], report["data"] = str(model_dir), str(data_dir)
    if out_file:
        with open(out_file, "w") as f:
            jsonlib.dump(report, f, indent=1)
    if out.json:
        out.emit_json(report)
    else:
        out.print(formatter(report))


def pretrain(
    ctx: typer.Context,
    config: Annotated[str, typer.Argument(help="YAML file (or preset name) with a pretrain: section")],
    force: Annotated[bool, typer.Option("--force", help="redo phases whose outputs exist")] = False,
    quiet: Quiet = False,
    debug: options.Debug = False,
) -> None:
    """Synthetic data and tiny backbones from scratch (a config's pretrain: section), before `heron train`."""
    import torch

    from heron.errors import ConfigError
    from heron.train.config import load_run_config
    from heron.train.recipe import make_data, pretrain_backbones

    out: Output = ctx.obj
    out.configure(debug=debug)
    _quiet_transformers()
    run = load_run_config(config)
    if run.pretrain is None:
        raise ConfigError(f"{config} has no 'pretrain:' section (only the demo model pretrains its own backbones)")
    if run.train.threads > 0:
        torch.set_num_threads(run.train.threads)
    manifests = make_data(run, force=force, progress=not quiet)
    times = pretrain_backbones(run, manifests, force=force, progress=not quiet)
    done = [f"{k} {v:.0f} s" if v is not None else f"{k} (already there; --force redoes it)" for k, v in times.items()]
    out.print("pretrained: " + ", ".join(done))


def demo_model(
    ctx: typer.Context,
    config: Annotated[str, typer.Option("--config", help="the demo recipe's YAML file")] = "configs/demo.yaml",
    force: Annotated[bool, typer.Option("--force", help="redo every phase, ignoring earlier outputs")] = False,
    quiet: Quiet = False,
    debug: options.Debug = False,
) -> None:
    """Build the demo model from scratch: data, tiny backbones, stage 1, stage 2, evaluation (make demo-model)."""
    from heron.train.recipe import build_demo_model

    out: Output = ctx.obj
    out.configure(debug=debug)
    _quiet_transformers()
    build_demo_model(config, force=force, progress=not quiet)


def _evaluate_pipeline(out: Output, config, model_dir, questions, selection, when, redis_url, quiet: bool) -> dict:
    """``heron eval --pipeline``: every question asked through a Heron (heron.service.evaluate)."""
    from tqdm import tqdm

    from heron.service import Heron
    from heron.service.evaluate import evaluate_pipeline

    cfg = options.pipeline_config(config, model_dir, out)
    overrides = {k: v for k, v in (("selection", selection), ("when", when)) if v is not None}
    cfg.answer = dataclasses.replace(cfg.answer, **overrides)  # (checked: a typo is one line)
    bar = tqdm(total=len(questions), unit="question", disable=quiet, desc="asking")
    with Heron(cfg, redis_url=redis_url, progress=False) as heron:
        report = evaluate_pipeline(heron, questions, on_progress=lambda done, _: bar.update(done - bar.n))
    bar.close()
    return report
