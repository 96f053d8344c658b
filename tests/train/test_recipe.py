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


def test_recipe_with_long_videos_trains_window_order_and_ships_the_retrieval_tower(tmp_path):
    """Long training videos given whole, the retrieval text tower tuned from the vision CLIP, and a
    model with window-order embeddings: all of it lands in the model directory and loads back."""
    from safetensors.torch import load_file

    import heron

    build = f"{tmp_path}/build"
    cfg = _config(tmp_path)
    cfg["model"]["window_order"] = 4
    cfg["model"]["retrieval"] = {"name_or_path": f"{build}/retrieval", "frames_per_window": 2}
    cfg["train"]["data"]["long_train"] = f"{build}/data/long_train.jsonl"
    cfg["train"]["stages"].append(
        {
            "name": "long",
            "trainable": "end_to_end",
            "train": [f"{build}/data/train.jsonl", f"{build}/data/long_train.jsonl"],
            "batch_size": 4,
            "lr": 3e-3,
            "warmup_steps": 1,
            "steps": 2,
            "eval_samples": 0,
            "eval_questions": 0,
            "lr_multipliers": {"window_order": 30.0},
        }
    )
    cfg["pretrain"]["data"].update(long_train_videos=2, long_train_seconds=[6.0, 8.0], long_train_events=[1, 2])
    cfg["pretrain"]["vision"]["clip_out"] = f"{build}/clip"
    cfg["pretrain"]["retrieval"] = {"out": f"{build}/retrieval", "clips": 2, "steps": 2, "batch_size": 8}
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(cfg))
    model_dir = build_demo_model(config, progress=False)

    long_samples = read_samples(tmp_path / "build/data/long_train.jsonl")
    assert long_samples and all(len(s.media) == 1 and s.media[0].end > 2.0 for s in long_samples)  # > 1 window
    order = load_file(str(model_dir / "model.safetensors"))["window_order"]
    assert order.shape == (4, 16) and order.abs().sum() > 0  # trained away from its zero start
    model = heron.load_model(model_dir, trainable="none", device="cpu")
    assert model.encoder.retrieval is not None and (model_dir / "retrieval" / "config.json").exists()
    frames = torch.randint(0, 255, (3, 8, 32, 32, 3), dtype=torch.uint8)
    windows, texts = model.encoder.retrieval.embed_windows(frames), model.encoder.retrieval.embed_texts(["red square"])
    assert windows.shape[0] == 3 and texts.shape == (1, windows.shape[1])
    assert torch.allclose(windows.norm(dim=-1), torch.ones(3), atol=1e-4)
