"""OpenFlamingo checkpoints: Heron computes the reference's function (open-flamingo 2.0.1).

The fixture (tests/fixtures/openflamingo/, written by tools/openflamingo_parity/make_fixture.py
in the reference's own venv) holds small random OpenFlamingo models — OPT and GPT-NeoX,
cross-attention every 1 and 2 layers, an open_clip ViT with QuickGELU and one with GELU — their
checkpoints, the inputs and the reference's outputs. No reference install is needed here.
"""

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import heron
from heron.cli import main as heron_cli
from heron.errors import CheckpointMismatchError, ConfigError
from heron.models.heron_model import Prompts
from heron.models.openflamingo import VARIANTS, load_openflamingo, open_clip_to_hf_clip, open_clip_vision_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "openflamingo"
CASES = ["opt-every1", "opt-every2", "gpt_neox-every1", "gpt_neox-every2"]  # gpt_neox-every2: a full state dict
LOGIT_ATOL = 1e-4  # fp32; measured ~1e-6
PIXEL_ATOL = 1e-5


@functools.cache
def _model(case: str):
    return load_openflamingo(FIXTURE / case / "checkpoint.pt", device="cpu", dtype="float32", trainable="none")


@functools.cache
def _reference(case: str) -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(FIXTURE / case / "reference.safetensors")), json.loads(
        (FIXTURE / case / "reference.json").read_text()
    )


def _latents_from_pixels(model, pixels: torch.Tensor) -> torch.Tensor:
    """The reference's preprocessed pixels [M, 3, H, W] → media latents [1, M, R, d], one frame per item."""
    with torch.no_grad():
        features = model.encoder.backbone.features(pixels)  # [M, S, d]
        return model.encoder.resample(features[:, None])[None]  # [1, M, R, d]


def _max_logit_diff(model, ref, media) -> float:
    with torch.no_grad():
        logits = model(ref["input_ids"], ref["attention_mask"], media).logits
    assert logits.shape == ref["logits"].shape
    return (logits - ref["logits"]).abs().max().item()


@pytest.mark.parametrize("case", CASES)
def test_logits_match_the_reference_on_the_same_pixels(case):
    model, (ref, _) = _model(case), _reference(case)
    with torch.no_grad():
        tokens = model.encoder.backbone.features(ref["pixel_values"])
    torch.testing.assert_close(tokens, ref["vision_tokens"], rtol=0, atol=1e-5)  # vision_encoder(x)[1]
    media = _latents_from_pixels(model, ref["pixel_values"])
    torch.testing.assert_close(media, ref["media_latents"], rtol=0, atol=1e-5)
    assert _max_logit_diff(model, ref, media) <= LOGIT_ATOL


@pytest.mark.parametrize("case", CASES)
def test_greedy_tokens_match_the_reference(case):
    """The reference generated with Heron's rules: stop at EOS/<|endofchunk|>, <image> and pad banned."""
    model, (ref, meta) = _model(case), _reference(case)
    assert meta["greedy_min_margin"] > 100 * LOGIT_ATOL  # the fixture has no near-ties to flip
    media = _latents_from_pixels(model, ref["pixel_values"])
    batch = Prompts(ref["input_ids"], ref["attention_mask"], media, torch.ones(media.shape[:3], dtype=torch.bool))
    tokens = model.generate_ids(batch, max_new_tokens=meta["max_new_tokens"])
    assert tokens.tolist() == ref["generated"].tolist()


@pytest.mark.parametrize("case", ["opt-every1", "gpt_neox-every1"])  # the two vision towers (QuickGELU, GELU)
def test_heron_preprocessing_of_raw_images_matches_the_reference(case):
    model, (ref, meta) = _model(case), _reference(case)
    pixels = model.encoder.backbone.pixel_values(ref["images"])  # uint8 [M, H, W, 3] at the tower's native size
    torch.testing.assert_close(pixels, ref["pixel_values"], rtol=0, atol=PIXEL_ATOL)
    # ...so raw images through Heron's whole path (tokenizer, encode, generate) give the reference's answer.
    batch = model.prepare([meta["prompt"]], [list(ref["images"])])
    assert batch.input_ids.tolist() == ref["input_ids"].tolist()
    assert _max_logit_diff(model, ref, batch.media) <= LOGIT_ATOL
    text = model.generate(meta["prompt"], list(ref["images"]), max_new_tokens=meta["max_new_tokens"])
    assert text == model.tokenizer.decode(model._until_stop(meta["generated"], True), skip_special_tokens=True)


def test_tokens_are_added_as_openflamingo_adds_them():
    model, (_, meta) = _model("opt-every1"), _reference("opt-every1")
    ids = {token: model.tokenizer.convert_tokens_to_ids(token) for token in meta["special_tokens"]}
    assert ids == meta["special_tokens"] and len(model.tokenizer) == meta["len_tokenizer"]
    assert model.lm.get_input_embeddings().weight.shape[0] == meta["len_tokenizer"]


@pytest.mark.parametrize("case", ["opt-every2", "gpt_neox-every1"])
def test_video_time_embeddings_start_at_zero_and_multi_frame_windows_work(case):
    """No time embeddings in OpenFlamingo: a T-frame window is its perceiver over T*S tokens."""
    model, (ref, _) = _model(case), _reference(case)
    assert not model.encoder.time_embeddings.embeddings.any()
    with torch.no_grad():
        two_frames = model.encoder.resample(ref["two_frame_features"][0])  # [1, T=2, S, d] → [1, R, d]
    torch.testing.assert_close(two_frames, ref["two_frame_latents"][0], rtol=0, atol=1e-5)
    frames = ref["images"][None].expand(2, -1, -1, -1, -1)  # two 2-frame windows
    assert model.encode(frames).shape == (2, model.encoder.num_latents, model.encoder.dim)


def test_load_model_routes_a_checkpoint_file_to_the_openflamingo_loader():
    model = heron.load_model(FIXTURE / "opt-every2" / "checkpoint.pt", device="cpu", dtype="float32", trainable="none")
    ref, _ = _reference("opt-every2")
    assert model.xattn_layer_indices == [1, 3]
    assert _max_logit_diff(model, ref, _latents_from_pixels(model, ref["pixel_values"])) <= LOGIT_ATOL


def test_openflamingo_trainable_parts_are_heron_own():
    model = heron.load_model(FIXTURE / "opt-every1" / "checkpoint.pt", device="cpu", dtype="float32")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith("encoder.") and not n.startswith("encoder.backbone.") or ".gated_cross_attn_layer." in n
        for n in trainable
    )


@pytest.mark.parametrize("case", ["opt-every1", "gpt_neox-every2"])
def test_convert_writes_safetensors_that_reload_to_the_same_function(tmp_path, case, capsys):
    out = tmp_path / "converted"
    assert heron_cli(["convert", "openflamingo", str(FIXTURE / case / "checkpoint.pt"), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pt", ".bin", ".pth", ".pkl")]
    assert {"heron.yaml", "model.safetensors"} <= {p.name for p in files}
    model, (ref, meta) = heron.load_model(out, device="cpu", dtype="float32", trainable="none"), _reference(case)
    media = _latents_from_pixels(model, ref["pixel_values"])
    assert _max_logit_diff(model, ref, media) <= LOGIT_ATOL
    torch.testing.assert_close(
        model.encoder.backbone.pixel_values(ref["images"]), ref["pixel_values"], rtol=0, atol=PIXEL_ATOL
    )
    batch = Prompts(ref["input_ids"], ref["attention_mask"], media, torch.ones(media.shape[:3], dtype=torch.bool))
    assert model.generate_ids(batch, max_new_tokens=meta["max_new_tokens"]).tolist() == ref["generated"].tolist()


def _copy_case(tmp_path: Path, case: str) -> Path:
    """The case's checkpoint with an openflamingo.json whose paths point back into the fixture."""
    directory = tmp_path / case
    directory.mkdir()
    sidecar = json.loads((FIXTURE / case / "openflamingo.json").read_text())
    for name in ("vision", "lm", "tokenizer"):
        sidecar[name] = str((FIXTURE / case / sidecar[name]).resolve())
    (directory / "openflamingo.json").write_text(json.dumps(sidecar))
    shutil.copy(FIXTURE / case / "checkpoint.pt", directory / "checkpoint.pt")
    return directory / "checkpoint.pt"


def test_missing_unknown_and_misshaped_keys_are_reported_together(tmp_path):
    path = _copy_case(tmp_path, "opt-every2")
    state = torch.load(path, weights_only=True)
    del state["lang_encoder.model.decoder.layers.3.gated_cross_attn_layer.ff_gate"]
    state["lang_encoder.model.decoder.stray.weight"] = torch.zeros(2)
    state["perceiver.norm.weight"] = torch.zeros(5)
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_openflamingo(path, device="cpu", dtype="float32")
    message = str(error.value)
    assert "lm.model.decoder.layers.3.gated_cross_attn_layer.ff_gate" in message  # missing
    assert "lm.model.decoder.stray.weight" in message  # unexpected
    assert "encoder.resampler.norm.weight (file (5,) vs model (12,))" in message  # mis-shaped


def test_a_wrong_interval_or_unknown_sources_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"before layers \[1, 3\] \(every 2\), not every 1"):
        load_openflamingo(FIXTURE / "opt-every2" / "checkpoint.pt", cross_attn_every_n_layers=1)
    bare = tmp_path / "checkpoint.pt"
    shutil.copy(FIXTURE / "opt-every2" / "checkpoint.pt", bare)
    with pytest.raises(ConfigError, match="cannot tell which vision and lm"):
        load_openflamingo(bare)
    with pytest.raises(ConfigError, match="unknown OpenFlamingo model 'openflamingo/Nope'.*OpenFlamingo-4B-vitl-rpj3b"):
        heron.load_model("openflamingo/Nope")
    torch.save({"x": torch.zeros(1), "obj": object.__new__(_NotAllowed)}, tmp_path / "evil.pt")
    with pytest.raises(ConfigError, match="not a weights-only PyTorch checkpoint"):
        load_openflamingo(tmp_path / "evil.pt", vision="v", lm="l")


class _NotAllowed:
    pass


def test_the_released_variants_are_listed_with_their_backbones():
    assert set(VARIANTS) >= {
        "openflamingo/OpenFlamingo-3B-vitl-mpt1b",
        "openflamingo/OpenFlamingo-4B-vitl-rpj3b",
        "openflamingo/OpenFlamingo-9B-vitl-mpt7b",
    }
    intervals = {name.split("/")[1]: v.cross_attn_every_n_layers for name, v in VARIANTS.items()}
    assert intervals["OpenFlamingo-3B-vitl-mpt1b"] == 1 and intervals["OpenFlamingo-4B-vitl-rpj3b"] == 2
    assert intervals["OpenFlamingo-9B-vitl-mpt7b"] == 4
    assert all(v.trust_remote_code == ("mpt" in v.lm) for v in VARIANTS.values())


def test_open_clip_conversion_splits_packed_attention_and_refuses_what_hf_clip_cannot_express():
    width = 4
    packed = torch.arange(3 * width * width, dtype=torch.float32).view(3 * width, width)
    converted, unexpected = open_clip_to_hf_clip(
        {
            "transformer.resblocks.0.attn.in_proj_weight": packed,
            "proj": torch.zeros(width, 2),
            "transformer.resblocks.0.ls_1.gamma": torch.ones(width),
        }
    )
    for i, name in enumerate("qkv"):
        assert torch.equal(
            converted[f"encoder.layers.0.self_attn.{name}_proj.weight"], packed[i * width : (i + 1) * width]
        )
    assert unexpected == ["transformer.resblocks.0.ls_1.gamma"]  # layer scale has no CLIPVisionModel weight
    init, keep_cls = open_clip_vision_config(
        {"quick_gelu": True, "vision_cfg": {"width": 64, "layers": 2, "head_width": 32}}
    )
    assert init["hidden_act"] == "quick_gelu" and init["num_attention_heads"] == 2 and not keep_cls
    with pytest.raises(ConfigError, match="ls_init_value"):
        open_clip_vision_config({"vision_cfg": {"ls_init_value": 0.1}})


@pytest.mark.parametrize("case", ["opt-every1", "gpt_neox-every2"])
def test_an_encoder_from_an_openflamingo_checkpoint_builds_no_lm(case, monkeypatch):
    """Encode workers need the vision side only: load_encoder must not build (or download) the LM."""
    from heron.models import building, load_encoder

    def no_lm(cfg):
        raise AssertionError("load_encoder built a language model")

    monkeypatch.setattr(building, "build_lm", no_lm)
    encoder = load_encoder(FIXTURE / case / "checkpoint.pt", device="cpu", dtype="float32")
    whole = _model(case)
    frames = _reference(case)[0]["images"][None].expand(2, -1, -1, -1, -1)  # two 2-frame windows
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    torch.testing.assert_close(encoder.encode(frames), whole.encode(frames), rtol=0, atol=0)
