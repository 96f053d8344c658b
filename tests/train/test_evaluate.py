"""heron eval: generation accuracy per category, the time-embedding ablation, and the commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import heron
from heron.cli import main as heron_cli
from heron.config import DecodeConfig
from heron.train.evaluate import evaluate, normalize_answer, read_questions, time_embeddings_zeroed

from .conftest import DECODE, tiny_model_config


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_normalize_answer():
    assert normalize_answer("  The Red. ") == "red"
    assert normalize_answer("2") == "two" and normalize_answer("Yes!") == "yes"
    assert normalize_answer("a blue circle") == "blue circle"


def test_zeroed_time_embeddings_make_the_encoder_blind_to_frame_order():
    rng = np.random.default_rng(0)
    model = heron.load_model(tiny_model_config(), trainable="none")
    with torch.no_grad():
        model.encoder.time_embeddings.embeddings.normal_()  # clearly non-zero, as after training
    saved = model.encoder.time_embeddings.embeddings.clone()
    frames = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    shuffled = frames[rng.permutation(8)]
    assert not torch.allclose(model.encode(frames), model.encode(shuffled), atol=1e-4)
    with time_embeddings_zeroed(model):
        torch.testing.assert_close(model.encode(frames), model.encode(shuffled), rtol=1e-5, atol=1e-5)
    assert torch.equal(model.encoder.time_embeddings.embeddings, saved)  # restored


def test_report_counts_generated_answers_per_category(tiny_data, monkeypatch):
    model = heron.load_model(tiny_model_config(), trainable="none")
    questions = read_questions(tiny_data["root"], split="val")
    assert len(questions) >= 8
    report, rows = evaluate(model, questions, DecodeConfig(**DECODE), ablations=("time-embeddings",))
    assert set(report["categories"]) == {q.category for q in questions}
    assert report["overall"]["n"] == len(questions) == len(rows)
    assert set(report["ablations"]) == {"time-embeddings"}
    assert 0 <= report["overall"]["accuracy"] <= 1 and report["overall"]["choice_accuracy"] is not None
    assert all(r["choice"] in r["choices"] for r in rows)

    # An answerer that knows the answers (written sloppily) scores 1.0: the metric is exact match
    # after normalisation, on the generated text.
    answers = iter(q.answer for q in questions)  # questions are answered in order
    monkeypatch.setattr(
        model, "generate", lambda prompts, media, **kw: [f" The {next(answers).upper()}." for _ in prompts]
    )
    perfect, _ = evaluate(model, questions, DecodeConfig(**DECODE), score_choices=False)
    assert perfect["overall"]["accuracy"] == 1.0
    assert all(c["accuracy"] == 1.0 for c in perfect["categories"].values())


def test_train_and_eval_commands(tmp_path, tiny_data, capsys):
    config = {
        "model": {**yaml.safe_load(open("configs/tiny.yaml"))["model"], "device": "cpu"},
        "train": {
            "output_dir": str(tmp_path / "run"),
            "progress": False,
            "threads": 1,
            "data": {"train": str(tiny_data["train"]), "decode": DECODE, "frame_cache": str(tiny_data["frames"])},
            "stages": [{"name": "only", "steps": 2, "batch_size": 2, "eval_samples": 0, "eval_questions": 0}],
            "save_to": str(tmp_path / "model"),
        },
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    assert heron_cli(["train", str(path), "--quiet"]) == 0
    assert (tmp_path / "model" / "model.safetensors").is_file()
    capsys.readouterr()
    assert (
        heron_cli(
            [
                "eval",
                str(tmp_path / "model"),
                str(tiny_data["root"]),
                "--split",
                "val",
                "--json",
                "--limit",
                "5",
                "--ablate",
                "time-embeddings",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 5 and "time-embeddings" in report["ablations"]
    assert report["decode"]["window_frames"] == 8  # read from the model's training.json

    config["train"]["stages"][0]["trainable"] = "everything"
    path.write_text(yaml.safe_dump(config))
    assert heron_cli(["train", str(path)]) == 2
    assert "trainable" in capsys.readouterr().err
