"""save_pretrained → load_model rebuilds the same function; the loader owns freezing."""

import dataclasses

import pytest
import torch
from safetensors.torch import load_file, save_file

import heron
from heron.errors import CheckpointMismatchError, ConfigError, UnsupportedArchitectureError
from heron.models import build_model, save_pretrained

from .conftest import open_gates, random_frames, tiny_config

PROMPT = "<image>A clip.<|endofchunk|><image>Another"


def _logits(model, media):
    batch = model.prepare([PROMPT], [media])
    with torch.no_grad():
        return model(batch.input_ids, batch.attention_mask, batch.media).logits


@pytest.mark.parametrize(
    "connector, resampler",
    [
        ("gated_xattn", {}),
        ("linear_prefix", {}),
        ("gated_xattn", {"spatial_values": "space_time", "time_spans": [1, 2], "competing_latents": 3}),
    ],
)
def test_save_then_load_gives_identical_logits(tmp_path, rng, connector, resampler):
    cfg = tiny_config("llama", connector=connector)
    cfg.resampler = dataclasses.replace(cfg.resampler, **resampler)
    model = heron.load_model(cfg)
    open_gates(model, 0.7)
    with torch.no_grad():  # make Heron's weights differ from a fresh init
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    media = [random_frames(rng), random_frames(rng, frames=3)]
    save_pretrained(model, tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {
        "heron.yaml",
        "model.safetensors",
        "vision",
        "lm",
        "tokenizer.json",
    }
    loaded = heron.load_model(tmp_path / "m")
    torch.testing.assert_close(_logits(loaded, media), _logits(model, media), rtol=0, atol=0)
    assert loaded.generate(PROMPT, media, max_new_tokens=5) == model.generate(PROMPT, media, max_new_tokens=5)


def test_only_heron_parts_are_trainable():
    model = heron.load_model(tiny_config("gpt2"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing would train"
    for name in trainable:
        assert (
            name.startswith(("encoder.time_embeddings.", "encoder.resampler.")) or ".gated_cross_attn_layer." in name
        ), name
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("encoder.backbone.") for n in frozen) and any(n.startswith("lm.") for n in frozen)
    assert any(".gated_cross_attn_layer." in n for n in trainable) and "encoder.time_embeddings.embeddings" in trainable

    end_to_end = heron.load_model(tiny_config("gpt2"), trainable="end_to_end")
    names = {n for n, p in end_to_end.named_parameters() if p.requires_grad}
    assert {"lm.transformer.h.0.attn.c_attn.weight", "lm.transformer.h.1.decoder_layer.attn.c_attn.weight"} <= names
    assert not any(n.startswith("encoder.backbone.") for n in names)


def test_mismatched_weights_list_the_offending_keys(tmp_path):
    model = heron.load_model(tiny_config("gpt2"))
    save_pretrained(model, tmp_path / "m")
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    weights.pop("encoder.resampler.latents")
    weights["encoder.time_embeddings.embeddings"] = torch.zeros(9, 1, 24)
    weights["stray.weight"] = torch.zeros(1)
    save_file(weights, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError) as err:
        heron.load_model(tmp_path / "m")
    message = str(err.value)
    assert "encoder.resampler.latents" in message and "stray.weight" in message
    assert "encoder.time_embeddings.embeddings (file (9, 1, 24) vs model (4, 1, 24))" in message


def test_unknown_architecture_names_the_config_key():
    model = build_model(tiny_config("gpt2"))
    cfg = tiny_config("gpt2")
    cfg.lm.decoder_layers_attr = "transformer.nope"
    with pytest.raises(UnsupportedArchitectureError, match="lm.decoder_layers_attr"):
        build_model(cfg)
    model.lm.config.model_type = "mystery"
    from heron.models.lm import decoder_layers_path

    with pytest.raises(UnsupportedArchitectureError, match="set `lm.decoder_layers_attr`"):
        decoder_layers_path(model.lm)
    assert decoder_layers_path(model.lm, "transformer.h") == "transformer.h"


def test_preset_and_config_errors(tmp_path):
    assert heron.load_model("tiny").config.name == "tiny"
    with pytest.raises(ConfigError, match="no model, preset or model directory named 'nope'"):
        heron.load_model("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  resampler: {depth: two}\n")
    with pytest.raises(ConfigError, match=r"resampler.depth must be int"):
        heron.load_model(bad)
    bad.write_text("model:\n  resampler: {depht: 2}\n")
    with pytest.raises(ConfigError, match="unknown key.*depht"):
        heron.load_model(bad)


def test_load_encoder_matches_the_full_model_for_presets_and_saved_dirs(tmp_path, rng):
    """Encode workers load only the vision side; their latents must equal the full model's."""
    from heron.models import load_encoder

    frames = random_frames(rng, frames=3)
    cfg = tiny_config("gpt2")
    full = heron.load_model(cfg)
    torch.testing.assert_close(load_encoder(cfg).encode(frames), full.encode(frames), rtol=0, atol=0)
    with torch.no_grad():
        full.encoder.resampler.latents.add_(1.0)  # trained weights differ from any fresh init
    save_pretrained(full, tmp_path / "m")
    encoder = load_encoder(tmp_path / "m")
    assert not any(p.requires_grad for p in encoder.parameters())
    torch.testing.assert_close(encoder.encode(frames), full.encode(frames), rtol=0, atol=0)


def test_heron_model_saves_and_loads_as_transformers_users_expect(tmp_path, rng):
    from heron.models import HeronModel

    model = HeronModel.from_pretrained(tiny_config("gpt2"))
    open_gates(model, 0.5)
    assert model.save_pretrained(tmp_path / "m") == tmp_path / "m"
    loaded = HeronModel.from_pretrained(tmp_path / "m")
    media = [random_frames(rng), random_frames(rng, frames=3)]
    torch.testing.assert_close(_logits(loaded, media), _logits(model, media), rtol=0, atol=0)
    same = heron.load_model(tmp_path / "m")  # the one factory reads the same directory
    torch.testing.assert_close(_logits(same, media), _logits(model, media), rtol=0, atol=0)


def test_models_load_in_eval_mode_whatever_the_freezing(tmp_path):
    """A dropout LM in training mode answers at random: every loader returns eval mode."""
    cfg = tiny_config("gpt2")
    for trainable in ("connector", "end_to_end", "none"):
        assert not heron.load_model(cfg, trainable=trainable).training
    heron.load_model(cfg).save_pretrained(tmp_path / "m")
    from heron.models import HeronModel, load_encoder

    assert not HeronModel.from_pretrained(tmp_path / "m").training
    assert not load_encoder(tmp_path / "m").training


def test_inference_ignores_the_mode_the_caller_left_the_model_in(rng):
    """generate, scoring and encode run in eval mode inside, whatever mode the model is in, and
    leave that mode as it was; in training mode forward itself is noisy (GPT-2's dropout 0.1)."""
    from .conftest import open_gates, random_frames

    model = heron.load_model(tiny_config("gpt2"))
    open_gates(model)
    media = [random_frames(rng)]
    prompt = "<image>Question: what is it? Answer:"
    frames = torch.as_tensor(media[0])

    def outputs():
        with torch.no_grad():
            return (
                model.generate([prompt] * 2, [media, media], max_new_tokens=6),
                model.choice_logprobs([prompt], [media], ["yes", "no"]),
                model.encode(frames),
            )

    texts, scores, latents = outputs()
    model.train()
    for _ in range(3):
        again_texts, again_scores, again_latents = outputs()
        assert again_texts == texts
        torch.testing.assert_close(again_scores, scores, rtol=0, atol=0)
        torch.testing.assert_close(again_latents, latents, rtol=0, atol=0)
    assert model.training  # the caller's mode is restored
    assert not torch.equal(_logits(model, media * 2), _logits(model, media * 2))  # dropout is live: the test has teeth
