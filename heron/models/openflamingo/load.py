"""Loading an OpenFlamingo checkpoint as a Heron model (or only its vision side), and converting it."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from heron.config import LMConfig, ModelConfig
from heron.encoders.visual_encoder import VisualEncoder
from heron.errors import CheckpointMismatchError, ConfigError
from heron.models import building
from heron.models.heron_model import HeronModel
from heron.models.openflamingo.checkpoint import read_checkpoint, structure
from heron.models.openflamingo.keys import LoadReport, map_checkpoint, match_vocabulary, perceiver_weights
from heron.models.openflamingo.open_clip import load_vision, vision_config
from heron.models.openflamingo.variants import VARIANTS, OpenFlamingoSources, resolve_sources

log = logging.getLogger(__name__)


def load_openflamingo(
    checkpoint: str | Path,
    *,
    vision: str | None = None,
    lm: str | None = None,
    tokenizer: str | None = None,
    cross_attn_every_n_layers: int | None = None,
    trust_remote_code: bool | None = None,
    decoder_layers_attr: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trainable: building.Trainable = "connector",
) -> HeronModel:
    """A Heron model computing what OpenFlamingo computes with ``checkpoint``, in eval mode.

    ``checkpoint``: a released model's name (``"openflamingo/OpenFlamingo-4B-vitl-rpj3b"``,
    fetched from the hub) or a local ``checkpoint.pt``. The other arguments override what the
    variant table, or an ``openflamingo.json`` beside the checkpoint, say. ``vision`` is an HF
    CLIP id/dir or an open_clip dir (converted); ``lm`` an HF causal LM id/dir.
    Every unknown, missing or mis-shaped key is reported in one CheckpointMismatchError.
    """
    given = OpenFlamingoSources(
        vision, lm, tokenizer, cross_attn_every_n_layers, trust_remote_code, decoder_layers_attr
    )
    return _load(checkpoint, given, device=device, dtype=dtype, trainable=trainable)[0]


def load_openflamingo_encoder(
    checkpoint: str | Path, *, device: str | None = None, dtype: str | None = None
) -> VisualEncoder:
    """Only the vision side of an OpenFlamingo checkpoint (tower + perceiver), frozen: no LM is built."""
    path, sources = resolve_sources(checkpoint, OpenFlamingoSources())
    source = str(path)
    state = read_checkpoint(path)
    shape = structure(state, source)
    cfg = _model_config(checkpoint, path, sources, shape)
    encoder = building.build_encoder(cfg)
    if encoder.dim != shape["dim"]:
        raise CheckpointMismatchError(source, mismatched=[("perceiver.latents", (shape["dim"],), (encoder.dim,))])
    wanted = {f"encoder.{k}" for k in encoder.state_dict() if k.startswith(("resampler.", "time_embeddings."))}
    mapped = perceiver_weights(state)
    missing = sorted(k for k in wanted - set(mapped) if k.startswith("encoder.resampler."))
    unexpected = sorted(set(mapped) - wanted)
    visual = {k[len("vision_encoder.") :]: v for k, v in state.items() if k.startswith("vision_encoder.")}
    _, tower = vision_config(sources)
    mismatched: list = []
    if visual or tower is not None:
        m, u, mm = load_vision(
            encoder.backbone.tower, visual or tower.weights(), "vision_encoder" if visual else str(tower.directory)
        )
        missing, unexpected, mismatched = missing + m, unexpected + u, mm
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing=missing, unexpected=unexpected, mismatched=mismatched)
    with torch.no_grad():
        encoder.time_embeddings.embeddings.zero_()  # OpenFlamingo has none (unless frame_embs maps)
    encoder.load_state_dict({k[len("encoder.") :]: v for k, v in mapped.items()}, strict=False)
    encoder.requires_grad_(False)
    return building.place(encoder, cfg, device, dtype).eval()


def _model_config(checkpoint, path: Path, sources: OpenFlamingoSources, shape: dict) -> ModelConfig:
    vision_cfg, _ = vision_config(sources)
    return ModelConfig(
        vision=vision_cfg,
        lm=LMConfig(
            name_or_path=sources.lm,
            tokenizer=sources.tokenizer,
            trust_remote_code=bool(sources.trust_remote_code),
            decoder_layers_attr=sources.decoder_layers_attr or shape["layers_path"],
        ),
        resampler=shape["resampler"],
        xattn=shape["xattn"],
        connector="gated_xattn",
        name=str(checkpoint) if str(checkpoint) in VARIANTS else f"openflamingo:{path.parent.name}/{path.name}",
    )


def _load(checkpoint, given: OpenFlamingoSources, *, device, dtype, trainable) -> tuple[HeronModel, LoadReport]:
    path, sources = resolve_sources(checkpoint, given)
    source = str(path)
    state = read_checkpoint(path)
    shape = structure(state, source)
    every = sources.cross_attn_every_n_layers or shape["every_n"]
    if every != shape["every_n"]:
        raise ConfigError(
            f"{source} has gated cross-attention before layers {shape['xattn_layers']} "
            f"(every {shape['every_n']}), not every {every}"
        )
    cfg = _model_config(checkpoint, path, sources, shape)
    _, open_clip_tower = vision_config(sources)
    model = HeronModel.from_config(cfg)
    if model.xattn_layer_indices != shape["xattn_layers"]:
        raise CheckpointMismatchError(
            source,
            missing=[
                f"gated layers: checkpoint has {shape['xattn_layers']}, "
                f"the LM's every-{every} gives {model.xattn_layer_indices}"
            ],
        )
    if model.encoder.dim != shape["dim"]:
        raise CheckpointMismatchError(source, mismatched=[("perceiver.latents", (shape["dim"],), (model.encoder.dim,))])

    report = LoadReport(checkpoint=source)
    mapped, visual, unexpected = map_checkpoint(state, model, shape["layers_path"], report)
    match_vocabulary(model, mapped)
    expected = model.state_dict()
    own = {k for k in expected if k.startswith("encoder.resampler.") or ".gated_cross_attn_layer." in k}
    missing = sorted(own - set(mapped))
    unexpected += sorted(k for k in mapped if k not in expected)
    mismatched = [
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in mapped.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if visual or open_clip_tower is not None:
        vision_missing, vision_unexpected, vision_mismatched = load_vision(
            model.encoder.backbone.tower,
            visual or open_clip_tower.weights(),
            "vision_encoder" if visual else str(open_clip_tower.directory),
        )
        missing += vision_missing
        unexpected += vision_unexpected
        mismatched += vision_mismatched
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing=missing, unexpected=unexpected, mismatched=mismatched)

    with torch.no_grad():
        model.encoder.time_embeddings.embeddings.zero_()  # OpenFlamingo has none (unless frame_embs maps)
    result = model.load_state_dict(mapped, strict=False)
    if result.unexpected_keys:  # checked above; a wrapper hook that renamed a key would surface here
        raise CheckpointMismatchError(source, unexpected=result.unexpected_keys)
    report.lm_keys = sorted(k for k in mapped if k.startswith("lm.") and ".gated_cross_attn_layer." not in k)
    report.vision_from_checkpoint = bool(visual)
    log.info(
        "loaded %s: %d tensors (%d LM weights overridden, %d derived buffers ignored, %d aliases skipped)",
        source,
        len(mapped),
        len(report.lm_keys),
        len(report.ignored),
        report.aliases,
    )
    building.apply_freezing(model, trainable)
    return building.place(model, cfg, device, dtype).eval(), report


def convert_openflamingo(
    checkpoint: str | Path,
    out: str | Path,
    *,
    vision: str | None = None,
    lm: str | None = None,
    tokenizer: str | None = None,
    cross_attn_every_n_layers: int | None = None,
    trust_remote_code: bool | None = None,
    decoder_layers_attr: str | None = None,
) -> Path:
    """Read an OpenFlamingo checkpoint once and write a Heron model directory (safetensors).

    Backbones are referenced by id/path when the checkpoint left them untouched; a converted
    open_clip tower, or an LM whose embeddings the checkpoint carries (released checkpoints
    do: they hold the trained <image>/<|endofchunk|> rows), is saved into the directory.
    """
    given = OpenFlamingoSources(
        vision, lm, tokenizer, cross_attn_every_n_layers, trust_remote_code, decoder_layers_attr
    )
    model, report = _load(checkpoint, given, device="cpu", dtype="float32", trainable="none")
    settings, vision_cfg = model.encoder.backbone.settings, model.config.vision
    # Pin the preprocessing in heron.yaml: a tower saved into the directory has no processor config.
    vision_cfg.image_size, vision_cfg.image_mean, vision_cfg.image_std = (
        settings.image_size,
        list(settings.mean),
        list(settings.std),
    )
    vision_cfg.resize_mode, vision_cfg.center_crop = settings.resize_mode, settings.center_crop
    if report.vision_from_checkpoint:
        model.config.vision.name_or_path = None  # the checkpoint's tower: save it
    if report.lm_keys:
        model.config.lm.name_or_path = None  # the base LM's weights changed: save it
    return model.save_pretrained(out)
