"""The demo model from scratch: data → backbones → stage 1 → stage 2 → evaluation, in one call.

    build_demo_model("configs/demo.yaml")     what ``make demo-model`` runs

Every phase writes its result into the folders the config names and is skipped when that result
is already there (``force=True`` redoes everything), so an interrupted build continues.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path

import torch

from heron.data.synthetic import ClipConfig, ClipMetadata, generate_dataset, make_caption, make_frame_caption
from heron.data.synthetic.long import LongConfig, generate_long_dataset
from heron.errors import ConfigError
from heron.models.tokenizer import IMAGE_TOKEN
from heron.train.config import RunConfig, load_run_config
from heron.train.dataset import qa_text, write_caption_samples, write_qa_samples
from heron.train.evaluate import evaluate, format_report, read_questions

log = logging.getLogger(__name__)
RECIPE_FILE = "recipe.json"


def _same_path(a: str | None, b: str) -> bool:
    return a is not None and Path(a).resolve() == Path(b).resolve()


def make_data(run: RunConfig, *, force: bool = False, progress: bool = True) -> dict[str, Path]:
    """Synthetic train/val/test splits and the interleaved JSONL files the train config names."""
    data = run.pretrain.data
    clip = ClipConfig(size=data.size, num_frames=data.frames, fps=data.fps)
    root = Path(data.out)
    stamp = root / "generated.json"
    wanted = {
        "seed": data.seed,
        "train": data.train_clips,
        "val": data.val_clips,
        "test": data.test_clips,
        "size": data.size,
        "frames": data.frames,
        "fps": data.fps,
    }
    if data.long_train_videos or data.long_test_videos:  # (so a stamp from before long videos stays valid)
        wanted["long"] = [
            data.long_train_videos,
            list(data.long_train_seconds),
            list(data.long_train_events),
            data.long_test_videos,
            list(data.long_test_seconds),
            list(data.long_test_events),
        ]
    if force or not stamp.exists() or json.loads(stamp.read_text()) != wanted:
        for split, n in (("train", data.train_clips), ("val", data.val_clips), ("test", data.test_clips)):
            generate_dataset(root, n, data.seed, split=split, clip=clip, progress=progress)
        for split, n, seconds, events in (
            ("train", data.long_train_videos, data.long_train_seconds, data.long_train_events),
            ("test", data.long_test_videos, data.long_test_seconds, data.long_test_events),
        ):
            if n:
                long = LongConfig(
                    duration_s=tuple(seconds), events=tuple(events), window_s=data.frames / data.fps, clip=clip
                )
                generate_long_dataset(root / "long", n, data.seed, split=split, cfg=long, progress=progress)
        stamp.write_text(json.dumps(wanted))
    manifests = {split: root / split / "manifest.jsonl" for split in ("train", "val", "test")}
    for split, n in (("long_train", data.long_train_videos), ("long_test", data.long_test_videos)):
        if n:
            manifests[split] = root / "long" / split.removeprefix("long_") / "manifest.jsonl"
    if run.train.data.long_train:
        if "long_train" not in manifests:
            raise ConfigError(f"{run.source}: train.data.long_train is set but pretrain.data.long_train_videos is 0")
        # two turns per sample: more samples per video, so they are a fair share of a mixed stage
        write_qa_samples(manifests["long_train"], run.train.data.long_train, seed=run.train.seed, max_turns=2)
    write_qa_samples(
        manifests["train"],
        run.train.data.train,
        seed=run.train.seed,
        dense=run.train.data.dense_questions,
        max_turns=run.train.data.max_turns,
    )
    if run.train.data.captions:
        write_caption_samples(manifests["train"], run.train.data.captions)
    if run.train.data.val:
        write_qa_samples(manifests["val"], run.train.data.val, seed=run.train.seed)
    if run.train.data.val_captions:
        write_caption_samples(manifests["val"], run.train.data.val_captions)
    return manifests


def text_corpus(manifest: str | Path, *, seed: int = 0, grid: int = 3) -> tuple[list[str], list[str]]:
    """(LM pretraining texts, extra tokenizer-only texts) from a training split's manifest and clips.

    LM texts, per clip: its question–answer dialogue in the prompt format (turns in a seeded random
    order); its caption; and the caption followed by the dialogue, where the answers can be read
    off the caption, so the LM learns to look up the object a question names instead of only
    answer priors. Frame captions (vision pretraining) only go into the tokenizer's vocabulary.
    """
    import numpy as np

    manifest = Path(manifest)
    turns: dict[str, list[tuple[str, str]]] = {}
    for line in manifest.read_text().splitlines():
        item = json.loads(line)
        turns.setdefault(item["video"], []).append((item["question"], item["answer"]))
    rng = np.random.default_rng(seed)
    texts, frame_captions = [], set()
    for line in (manifest.parent / "clips.jsonl").read_text().splitlines():
        record = json.loads(line)
        meta = ClipMetadata.from_dict(record)
        caption = make_caption(meta)
        clip_turns = turns.get(record["video"], [])
        dialogue = qa_text([clip_turns[k] for k in rng.permutation(len(clip_turns))]) if clip_turns else ""
        texts.append(caption)
        if dialogue:
            texts.append(dialogue)
            texts.append(f"{IMAGE_TOKEN}{caption} {dialogue[len(IMAGE_TOKEN) :]}")
        frame_captions.update(make_frame_caption(meta, t, grid=grid) for t in range(meta.config.num_frames))
    return texts, sorted(frame_captions)


def long_dialogues(manifest: str | Path, *, seed: int = 0) -> list[str]:
    """Each long training video's question–answer dialogue in the prompt format (LM pretraining)."""
    import numpy as np

    turns: dict[str, list[tuple[str, str]]] = {}
    for line in Path(manifest).read_text().splitlines():
        item = json.loads(line)
        turns.setdefault(item["video"], []).append((item["question"], item["answer"]))
    rng = np.random.default_rng(seed)
    return [qa_text([t[k] for k in rng.permutation(len(t))]) for t in turns.values()]


def pretrain_backbones(
    run: RunConfig, manifests: dict[str, Path], *, force: bool = False, progress: bool = True
) -> dict[str, float | None]:
    """Tokenizer, LM and vision tower from scratch into the folders the model config names.

    Returns the seconds each took; None for one whose output was already there (reused)."""
    from transformers import AutoTokenizer

    from heron.train.pretrain import (
        frame_caption_pairs,
        frame_scenes,
        pretrain_lm,
        pretrain_retrieval,
        pretrain_vision,
        train_tokenizer,
    )

    pre = run.pretrain
    if not _same_path(run.model.lm.name_or_path, pre.lm.out) or not _same_path(
        run.model.vision.name_or_path, pre.vision.out
    ):
        raise ConfigError(
            f"{run.source}: model.lm.name_or_path / model.vision.name_or_path must be the pretrain "
            f"outputs ({pre.lm.out}, {pre.vision.out}) so the model loads the backbones made here"
        )
    times: dict[str, float | None] = {"tokenizer": None, "lm": None, "vision": None, "retrieval": None}
    clips_file = manifests["train"].parent / "clips.jsonl"
    clock = time.perf_counter()
    texts, extra = text_corpus(manifests["train"], seed=run.train.seed, grid=pre.vision.caption_grid)
    if "long_train" in manifests:
        # their words ("when ...?", "third") go into the vocabulary, but the LM pretrains on the short
        # clips' texts only, as the backbones the recipe was tuned on did (docs/training-history.md)
        extra += long_dialogues(manifests["long_train"], seed=run.train.seed)
    if force or not (Path(pre.tokenizer.out) / "tokenizer.json").exists():
        train_tokenizer(texts + extra, pre.tokenizer.out, lowercase=pre.tokenizer.lowercase)
        times["tokenizer"] = time.perf_counter() - clock
    tokenizer = AutoTokenizer.from_pretrained(pre.tokenizer.out)
    clock = time.perf_counter()
    if force or not (Path(pre.lm.out) / "pretrain.json").exists():
        pretrain_lm(pre.lm, tokenizer, texts, seed=run.train.seed, progress=progress)
        times["lm"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if force or not (Path(pre.vision.out) / "pretrain.json").exists():
        frames, captions = frame_caption_pairs(
            clips_file,
            run.train.data.decode_config(),
            limit=pre.vision.clips,
            cache_dir=run.train.data.frame_cache,
            grid=pre.vision.caption_grid,
            progress=progress,
        )
        pretrain_vision(pre.vision, tokenizer, frames, captions, seed=run.train.seed, progress=progress)
        times["vision"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if pre.retrieval is not None and (force or not (Path(pre.retrieval.out) / "pretrain.json").exists()):
        if not pre.vision.clip_out or not _same_path(run.model.retrieval.name_or_path, pre.retrieval.out):
            raise ConfigError(
                f"{run.source}: pretrain.retrieval needs pretrain.vision.clip_out (it starts from that CLIP) and "
                f"model.retrieval.name_or_path = {pre.retrieval.out} (so the model loads it)"
            )
        frames, scenes = frame_scenes(
            clips_file,
            run.train.data.decode_config(),
            limit=pre.retrieval.clips,
            cache_dir=run.train.data.frame_cache,
            progress=progress,
        )
        pretrain_retrieval(
            pre.retrieval, pre.vision.clip_out, tokenizer, frames, scenes, seed=run.train.seed, progress=progress
        )
        times["retrieval"] = time.perf_counter() - clock
    return times


def build_demo_model(config: str | Path, *, force: bool = False, progress: bool = True) -> Path:
    """Run the whole recipe of a config with a ``pretrain:`` section; returns the final model dir."""
    from heron.train.trainer import Trainer

    run = load_run_config(config)
    if run.pretrain is None:
        raise ConfigError(f"{config} has no 'pretrain:' section: nothing says how to make the backbones")
    if run.train.threads > 0:
        torch.set_num_threads(run.train.threads)
    started = time.perf_counter()
    times: dict[str, float | None] = {}
    clock = time.perf_counter()
    manifests = make_data(run, force=force, progress=progress)
    times["data"] = time.perf_counter() - clock
    times.update(
        {f"pretrain_{k}": v for k, v in pretrain_backbones(run, manifests, force=force, progress=progress).items()}
    )
    clock = time.perf_counter()
    trainer = Trainer(run)
    final = trainer.fit(resume=not force)
    # every stage found done: recorded as null like reused backbones (each stage's training.json has its time)
    times["stages"] = None if len(trainer.reused) == len(run.train.stages) else time.perf_counter() - clock
    clock = time.perf_counter()
    model_dir = final
    report = evaluate_dir(model_dir, manifests["test"], run, progress=progress)
    times["eval"] = time.perf_counter() - clock
    times["total"] = time.perf_counter() - started
    # seconds: null = that phase's output was already in build/ and was reused (see its own run)
    recipe = {
        "config": str(config),
        "seconds": {k: None if v is None else round(v, 1) for k, v in times.items()},
        "machine": {
            "cpu_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "cuda": torch.cuda.is_available(),
        },
    }
    (model_dir / RECIPE_FILE).write_text(json.dumps(recipe, indent=1))
    print(format_report(report))
    print(f"demo model written to {model_dir} in {times['total'] / 60:.1f} min")
    return model_dir


def evaluate_dir(model_dir: Path, manifest: Path, run: RunConfig, *, progress: bool = True) -> dict:
    """``heron eval`` of a trained model on a manifest, with the time-embedding ablation; eval.json."""
    import heron

    model = heron.load_model(model_dir, trainable="none", device=run.train.device)
    questions = read_questions(manifest)
    report, _ = evaluate(
        model, questions, run.train.data.decode_config(), ablations=("time-embeddings",), progress=progress
    )
    report["model"], report["data"] = str(model_dir), str(manifest)
    (model_dir / "eval.json").write_text(json.dumps(report, indent=1))
    return report
