"""The one entry point that builds a Heron model from anything that names one.

``load_model(source)`` accepts a preset name (``"tiny"``), a YAML file, a ``ModelConfig``, a
directory written by ``save_pretrained``, or an OpenFlamingo checkpoint (a released model's name,
``openflamingo/...``, or a ``checkpoint.pt``). Heron's own formats go to
``HeronModel.from_pretrained``; OpenFlamingo's to ``load_openflamingo``. Either way the model comes
back in eval mode with the freezing policy of ``trainable`` applied (``building.apply_freezing``).
"""

from __future__ import annotations

from pathlib import Path

from heron.config import ModelConfig
from heron.config.model_source import resolve_model_source
from heron.encoders.visual_encoder import VisualEncoder
from heron.models import building
from heron.models.building import Trainable
from heron.models.heron_model import HeronModel
from heron.models.openflamingo import load_openflamingo, load_openflamingo_encoder


def is_openflamingo(source) -> bool:
    """A released OpenFlamingo name (not a local directory) or a ``.pt`` checkpoint file."""
    return not isinstance(source, ModelConfig) and resolve_model_source(source).kind == "openflamingo"


def load_model(
    path_or_config: str | Path | ModelConfig,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trainable: Trainable = "connector",
) -> HeronModel:
    """Build a Heron model (eval mode) from a preset name, YAML file, ModelConfig, saved directory or
    OpenFlamingo checkpoint. ``trainable`` picks the freezing policy (which parameters have
    ``requires_grad``; ``"none"`` for inference);
    ``device``/``dtype`` override the config's (``auto`` = CUDA + bf16 when present, else CPU + fp32).
    Training code calls ``.train()`` itself."""
    if is_openflamingo(path_or_config):
        return load_openflamingo(path_or_config, device=device, dtype=dtype, trainable=trainable)
    return HeronModel.from_pretrained(path_or_config, device=device, dtype=dtype, trainable=trainable)


def load_encoder(
    path_or_config: str | Path | ModelConfig, *, device: str | None = None, dtype: str | None = None
) -> VisualEncoder:
    """Only the vision side of a model (tower, time embeddings, resampler), frozen, in eval mode, for
    encode workers that never need the language model. Same weights as ``load_model(...).encoder``."""
    if is_openflamingo(path_or_config):
        return load_openflamingo_encoder(path_or_config, device=device, dtype=dtype)
    cfg, weights = building.resolve(path_or_config)
    encoder = building.build_encoder(cfg)
    if weights is not None:
        building.load_encoder_weights(encoder, weights)
    encoder.requires_grad_(False)
    return building.place(encoder, cfg, device, dtype).eval()


def build_model(cfg: ModelConfig) -> HeronModel:
    """A model with random init of Heron's own weights (seeded by ``cfg.seed``); see HeronModel.from_config."""
    return HeronModel.from_config(cfg)


def save_pretrained(model: HeronModel, directory: str | Path, *, save_backbones: bool | None = None) -> Path:
    """``model.save_pretrained(directory)``: write it so that ``load_model(directory)`` rebuilds it exactly."""
    return model.save_pretrained(directory, save_backbones=save_backbones)
