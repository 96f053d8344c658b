"""Every preset in configs/ parses into typed configs (the real-backbone ones need the hub to load)."""

import pytest

from heron.config import config_dir, load_config, load_pipeline_config

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


@pytest.mark.parametrize(
    "key, value", [("decode_actors", 0), ("max_in_flight", 0), ("num_encoders", 1.5), ("windows_per_call", -2)]
)
def test_ingest_counts_must_be_positive_integers(tmp_path, key, value):
    from heron.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text(f"pipeline:\n  ingest: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError, match=rf"pipeline\.ingest\.{key}.*{value}"):  # names the key and the value
        load_pipeline_config(path)
