"""Every preset in configs/ parses into typed configs (the real-backbone ones need the hub to load)."""

import pytest

from heron.config import config_dir, load_config
from heron.pipeline.config import load_pipeline_config

PRESETS = sorted(p.stem for p in config_dir().glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_parses(preset):
    model = load_config(preset)
    pipeline = load_pipeline_config(preset)
    assert model.resampler.num_latents > 0 and pipeline.decode.fps > 0
    assert pipeline.model  # every preset names the model its pipeline loads


def test_real_backbone_presets_name_hub_models():
    assert load_config("clip-l-rpj3b").lm.name_or_path == "togethercomputer/RedPajama-INCITE-Base-3B-v1"
    assert load_config("siglip-qwen2").vision.kind == "siglip"
