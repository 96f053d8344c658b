"""docs/training.md's example configs are real configs: every ``yaml`` block with a ``train:`` section
loads with the trainer's own reader (unknown keys and wrong types would fail), and the guide's
fine-tuning run names the directory and stages it says it does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from heron.train.config import load_run_config

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "training.md"
_YAML = re.compile(r"^```yaml[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def example_configs() -> list[str]:
    return [block for block in _YAML.findall(GUIDE.read_text()) if "train" in (yaml.safe_load(block) or {})]


def test_the_guide_has_its_two_examples():
    assert len(example_configs()) == 2  # fine-tune a model directory; a new model, two stages


@pytest.mark.parametrize("index", range(2))
def test_example_config_loads(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in the file are relative to where `heron train` runs
    path = tmp_path / "example.yaml"
    path.write_text(example_configs()[index])
    run = load_run_config(path)
    assert [stage.trainable for stage in run.train.stages] == ["connector", "end_to_end"]
    if run.train.init:  # fine-tuning: the model comes from the directory, decoded as it was trained
        assert run.train.init == "models/demo" and run.model.name == "demo"
        assert run.train.data.decode_config().fps == 8.0
    else:
        assert run.model.vision.name_or_path and run.model.lm.name_or_path
