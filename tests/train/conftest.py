"""Tiny training fixtures: a few synthetic clips (32 px, 8 frames) and run configs on the tiny preset."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from heron.config import load_config
from heron.data.synthetic import ClipConfig, generate_dataset
from heron.train.config import DataConfig, RunConfig, StageConfig, TrainConfig
from heron.train.dataset import write_qa_samples

CLIP = ClipConfig(size=32, num_frames=8, fps=8.0)
DECODE = {"fps": 8.0, "window_frames": 8, "size": 32}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    train = generate_dataset(root, 6, 0, split="train", clip=CLIP)
    val = generate_dataset(root, 2, 0, split="val", clip=CLIP)
    return {
        "root": root,
        "train_manifest": train,
        "val_manifest": val,
        "train": write_qa_samples(train, root / "train.jsonl"),
        "val": write_qa_samples(val, root / "val.jsonl"),
        "frames": root / "frames",
    }


def tiny_model_config():
    cfg = load_config("tiny")
    cfg.device, cfg.dtype = "cpu", "float32"
    return cfg


def tiny_run(tmp_path: Path, data: dict[str, Path], *stages: StageConfig, **train) -> RunConfig:
    """A RunConfig on the tiny preset that writes under ``tmp_path``."""
    stages = stages or (
        StageConfig(name="s1", steps=4, batch_size=3, lr=3e-3, warmup_steps=1, eval_samples=0, eval_questions=0),
    )
    cfg = TrainConfig(
        output_dir=str(tmp_path / "run"),
        data=DataConfig(
            train=str(data["train"]), val=str(data["val"]), decode=dict(DECODE), frame_cache=str(data["frames"])
        ),
        stages=[copy.deepcopy(s) for s in stages],
        device="cpu",
        progress=False,
        **train,
    )
    return RunConfig(model=tiny_model_config(), train=cfg, source="tests")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Same thread count in every run of a test, so float sums happen in the same order.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
