"""The parts a Heron model is built from, and how its directory is written and read.

Used by ``HeronModel.from_pretrained`` / ``save_pretrained`` and the OpenFlamingo importer; the
freezing policy lives here, in one place. A saved model directory holds:

    heron.yaml          the ModelConfig (backbone paths relative to the directory when saved)
    model.safetensors   Heron's own weights: time embeddings, resampler, gated layers / connector
    tokenizer files     with <image>, <|endofchunk|> (and <PAD>) added
    vision/, lm/        the backbones, when saved (random-init ones always are)
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
import yaml
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

from heron.config import LMConfig, ModelConfig, from_dict, load_config, read_yaml, to_dict
from heron.config.model_source import resolve_model_source
from heron.encoders.retrieval import RetrievalEmbedder
from heron.encoders.vision import VisionBackbone
from heron.encoders.visual_encoder import VisualEncoder
from heron.errors import CheckpointMismatchError, ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = "heron.yaml"
WEIGHTS_FILE = "model.safetensors"
Trainable = Literal["connector", "end_to_end", "none"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def build_lm(cfg: LMConfig) -> torch.nn.Module:
    if cfg.name_or_path:
        with backbone_errors("lm", cfg.name_or_path):
            return AutoModelForCausalLM.from_pretrained(cfg.name_or_path, trust_remote_code=cfg.trust_remote_code)
    if not cfg.architecture:
        raise ConfigError(
            "lm.architecture (an HF model_type such as 'gpt2' or 'llama') is needed when lm.name_or_path is not set"
        )
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.architecture, **cfg.init))


@contextlib.contextmanager
def backbone_errors(part: str, name: str) -> Iterator[None]:
    """A backbone that cannot be loaded (no such directory, a hub id with no network) as one ConfigError."""
    try:
        yield
    except OSError as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"cannot load the {part} backbone {name!r}: {detail}; give an existing directory, "
            "or a hub id whose files are in the Hugging Face cache (this machine may be offline)"
        ) from None


def new_encoder(cfg: ModelConfig) -> VisualEncoder:
    """The vision side (tower, time embeddings, resampler), from the current random state, with
    the retrieval embedder when the config names one (loaded last: it draws no random numbers
    that Heron's own layers would)."""
    encoder = VisualEncoder(VisionBackbone(cfg.vision), cfg.resampler)
    encoder.retrieval = RetrievalEmbedder.load(cfg.retrieval)
    return encoder


def build_encoder(cfg: ModelConfig) -> VisualEncoder:
    """The vision side alone, with the same initial weights as a whole model built from ``cfg``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return new_encoder(cfg)


def resize_embeddings(lm: torch.nn.Module, vocab_size: int) -> None:
    """Grow the LM's vocabulary for Heron's tokens; new rows = the mean of the old ones.

    Deterministic (HF's default samples them), so a reloaded model with a frozen LM
    reproduces the same embeddings without saving them.
    """
    old = lm.get_input_embeddings().weight.shape[0]
    if vocab_size <= old:
        return
    lm.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        for emb in {
            id(e): e for e in (lm.get_input_embeddings(), lm.get_output_embeddings()) if e is not None
        }.values():
            emb.weight[old:] = emb.weight[:old].mean(dim=0)


def heron_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Heron's own weights (everything not in the vision tower or the base LM)."""
    state = model.state_dict()
    own = {k: v for k, v in state.items() if not k.startswith(("encoder.backbone.", "encoder.retrieval.", "lm."))}
    own.update({k: v for k, v in state.items() if k.startswith("lm.") and ".gated_cross_attn_layer." in k})
    return own


def check_keys(source: str, saved: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Raise CheckpointMismatchError listing every missing, unexpected and mis-shaped key."""
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    mismatched = [
        (k, tuple(saved[k].shape), tuple(expected[k].shape))
        for k in sorted(set(saved) & set(expected))
        if saved[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing=missing, unexpected=unexpected, mismatched=mismatched)


def apply_freezing(model: torch.nn.Module, trainable: Trainable = "connector") -> None:
    """The freezing policy, in one place.

    connector:  time embeddings, resampler, gated layers / linear connector train; the vision
                tower and the LM are frozen (Flamingo; LLaVA stage 1).
    end_to_end: the LM trains too (LLaVA stage 2); the vision tower stays frozen.
    none:       nothing trains (inference).
    """
    for name, param in model.named_parameters():
        if name.startswith(("encoder.backbone.", "encoder.retrieval.")):  # frozen towers
            param.requires_grad_(False)
        elif name.startswith("lm.") and ".gated_cross_attn_layer." not in name:
            param.requires_grad_(trainable == "end_to_end")
        else:
            param.requires_grad_(trainable != "none")


def place(module: torch.nn.Module, cfg: ModelConfig, device: str | None, dtype: str | None) -> torch.nn.Module:
    """Move ``module`` to the requested (else the config's) device and dtype."""
    target = resolve_device(device or cfg.device)
    return module.to(device=target, dtype=resolve_dtype(dtype or cfg.dtype, target))


def resolve(path_or_config: str | Path | ModelConfig) -> tuple[ModelConfig, Path | None]:
    """The config a preset name, YAML file, ModelConfig or model directory stands for, and its
    weights file (None: Heron's layers start from random init). See ``resolve_model_source``."""
    if isinstance(path_or_config, ModelConfig):
        return copy.deepcopy(path_or_config), None
    source = resolve_model_source(path_or_config)
    if source.kind == "openflamingo":
        raise ConfigError(
            f"{path_or_config} is an OpenFlamingo checkpoint: load it with heron.load_model, "
            "or convert it once with `heron convert openflamingo`"
        )
    if source.kind == "directory":
        return _directory_config(Path(source.location)), Path(source.location) / WEIGHTS_FILE
    log.warning(
        "%s has no trained weights (random init): its answers are noise; use a trained model "
        "directory (e.g. models/demo) for real answers",
        source.name,
    )
    return load_config(source.location), None


def _directory_config(directory: Path) -> ModelConfig:
    cfg = from_dict(ModelConfig, read_yaml(directory / CONFIG_FILE), f"{directory / CONFIG_FILE}")
    for part in (cfg.vision, cfg.lm, cfg.retrieval):  # saved backbones are referenced relative to the directory
        if part.name_or_path and (directory / part.name_or_path).is_dir():
            part.name_or_path = str(directory / part.name_or_path)
    cfg.lm.tokenizer = str(directory)
    return cfg


def load_encoder_weights(encoder: VisualEncoder, weights: Path) -> None:
    """Load the ``encoder.*`` part of a model directory's weights (strictly, backbone aside)."""
    saved = {k[len("encoder.") :]: v for k, v in load_file(str(weights)).items() if k.startswith("encoder.")}
    expected = {k: v for k, v in encoder.state_dict().items() if not k.startswith(("backbone.", "retrieval."))}
    check_keys(str(weights), saved, expected)
    encoder.load_state_dict(saved, strict=False)


# Zero-initialised additions: a checkpoint saved before the config enabled one is that same model
# with the addition still at zero (it changes nothing until trained), so its absence is no error.
ZERO_INIT_OPTIONAL = ("window_order",)


def load_heron_weights(model: torch.nn.Module, path: Path) -> None:
    """Load ``model.safetensors`` strictly: any missing, unexpected or mis-shaped key is an error
    (except a zero-initialised addition the checkpoint predates, ``ZERO_INIT_OPTIONAL``)."""
    saved = load_file(str(path))
    expected = heron_state_dict(model)
    check_keys(str(path), saved, {k: v for k, v in expected.items() if k not in ZERO_INIT_OPTIONAL or k in saved})
    model.load_state_dict(saved, strict=False)


def write_model_dir(model, directory: str | Path, *, save_backbones: bool | None = None) -> Path:
    """Write ``model`` (a HeronModel) so that loading ``directory`` rebuilds it exactly.

    ``save_backbones``: True saves the vision tower and LM into the directory; False references
    them by hub id / path; None (default) saves only those that have no id/path (random init).
    A model whose LM was trained end to end must be saved with ``save_backbones=True``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(model.config)
    if save_backbones or (save_backbones is None and not cfg.vision.name_or_path):
        model.encoder.backbone.tower.save_pretrained(directory / "vision")
        cfg.vision.name_or_path, cfg.vision.init = "vision", {}
    if save_backbones or (save_backbones is None and not cfg.lm.name_or_path):
        base = {k: v for k, v in model.lm.state_dict().items() if ".gated_cross_attn_layer." not in k}
        model.lm.save_pretrained(directory / "lm", state_dict=base)
        cfg.lm.name_or_path, cfg.lm.init, cfg.lm.architecture = "lm", {}, None
    retrieval = model.encoder.retrieval
    # saved like a backbone, and by default whenever it is a local folder (the recipe's, under build/)
    if retrieval is not None and (
        save_backbones or (save_backbones is None and Path(cfg.retrieval.name_or_path).is_dir())
    ):
        retrieval.save_pretrained(directory / "retrieval")
        cfg.retrieval.name_or_path = "retrieval"
    cfg.lm.tokenizer = None  # the tokenizer is saved next to heron.yaml
    model.tokenizer.save_pretrained(directory)
    weights = {k: v.detach().contiguous().cpu() for k, v in heron_state_dict(model).items()}
    save_file(weights, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    log.info("saved Heron model to %s (%d own tensors)", directory, len(weights))
    return directory
