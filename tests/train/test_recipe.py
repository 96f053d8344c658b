"""The whole demo recipe on a toy config: data → backbones → caption stage → QA stage → eval."""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml

from heron.train.dataset import read_samples
from heron.train.recipe import build_demo_model

TINY_TOWER = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}


def _config(root) -> dict:
    build = f"{root}/build"
    stage = {"batch_size": 4, "lr": 3e-3, "warmup_steps": 1, "steps": 2, "eval_samples": 0, "eval_questions": 0}
    return {
        "model": {
            "vision": {"kind": "clip", "name_or_path": f"{build}/vision", "keep_cls": True},
            "lm": {"name_or_path": f"{build}/lm"},
            "resampler": {"depth": 1, "heads": 2, "head_dim": 8, "num_latents": 2, "max_frames": 8},
            "xattn": {"heads": 2, "head_dim": 8},
            "device": "cpu",
            "dtype": "float32",
        },
        "train": {
            "output_dir": f"{build}/run",
            "save_to": f"{root}/model",
            "device": "cpu",
            "progress": False,
            "data": {
                "train": f"{build}/data/train.jsonl",
                "captions": f"{build}/data/captions.jsonl",
                "val_captions": f"{build}/data/val_captions.jsonl",
                "decode": {"fps": 8.0, "window_frames": 8, "size": 32},
                "frame_cache": f"{build}/frames",
                "dense_questions": True,
                "max_turns": 4,
            },
            "stages": [
                {
                    "name": "align",
                    "trainable": "connector",
                    "train": [f"{build}/data/captions.jsonl"],
                    **stage,
                    "val": f"{build}/data/val_captions.jsonl",
                    "eval_samples": 1,
                },
                {"name": "tune", "trainable": "end_to_end", **stage},
            ],
        },
        "pretrain": {
            "data": {
                "out": f"{build}/data",
                "train_clips": 4,
                "val_clips": 1,
                "test_clips": 2,
                "size": 32,
                "frames": 8,
                "fps": 8.0,
            },
            "tokenizer": {"out": f"{build}/tokenizer"},
            "vision": {
                "out": f"{build}/vision",
                "init": TINY_TOWER,
                "steps": 2,
                "batch_size": 8,
                "clips": 2,
                "projection_dim": 8,
                "text_init": {**TINY_TOWER, "max_position_embeddings": 32},
            },
            "lm": {
                "out": f"{build}/lm",
                "init": {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 128},
                "steps": 2,
                "batch_size": 4,
            },
        },
    }


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_recipe_builds_evaluates_and_then_reuses_what_is_built(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path)))
    model_dir = build_demo_model(config, progress=False)

    assert model_dir == tmp_path / "model" and (model_dir / "model.safetensors").exists()
    captions = read_samples(tmp_path / "build/data/captions.jsonl")
    assert len(captions) == 4 and all(s.labels == "text" for s in captions)
    assert len(read_samples(tmp_path / "build/data/val_captions.jsonl")) == 1  # one per validation clip
    align = json.loads((tmp_path / "build/run/align/model/training.json").read_text())
    assert align["stages"][0]["train"] == [str(tmp_path / "build/data/captions.jsonl")]
    assert align["evals"][-1]["val_loss"] > 0  # measured on the validation captions
    report = json.loads((model_dir / "eval.json").read_text())
    assert report["overall"]["n"] >= 2 * 4 and "time-embeddings" in report["ablations"]
    first = json.loads((model_dir / "recipe.json").read_text())["seconds"]
    assert all(first[f"pretrain_{phase}"] is not None for phase in ("tokenizer", "lm", "vision"))

    # A second run finds every phase done: backbones are reused (recorded as null), stages skipped.
    backbone = (tmp_path / "build/lm/model.safetensors").stat().st_mtime_ns
    build_demo_model(config, progress=False)
    again = json.loads((model_dir / "recipe.json").read_text())["seconds"]
    assert all(again[f"pretrain_{phase}"] is None for phase in ("tokenizer", "lm", "vision"))
    assert first["stages"] > 0 and again["stages"] is None
    assert (tmp_path / "build/lm/model.safetensors").stat().st_mtime_ns == backbone
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path / "build/data"))
