"""The model's typed configuration (the ``model:`` section of a preset): one dataclass per part.

Every option is typed, defaulted and documented here, in one place; YAML → config → constructor.
``load_config("tiny")`` reads a preset's section (``tiny`` for tests and CPUs, real backbones for GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from heron.config.schema import from_dict, preset_path, read_yaml
from heron.errors import ConfigError


@dataclass
class VisionConfig:
    kind: Literal["clip", "siglip"] = "clip"  # which Hugging Face vision tower class to build
    name_or_path: str | None = None  # hub id or local dir; None = random init from `init` (tiny)
    init: dict[str, Any] = field(default_factory=dict)  # HF config kwargs when name_or_path is None
    hidden_layer: int = -1  # which hidden state to take: -1 = last layer (before post-layernorm)
    keep_cls: bool = False  # keep CLIP's CLS token as one of the S spatial tokens
    image_size: int | None = None  # square input size; None = the tower's own config
    # Normalisation and resize mode; None = the backbone's processor defaults for `kind`.
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    resize_mode: Literal["bicubic", "bilinear"] | None = None
    center_crop: bool | None = None  # CLIP: resize short side then centre-crop; SigLIP: squash


@dataclass
class LMConfig:
    name_or_path: str | None = None  # hub id or local dir; None = random init from `init` (tiny)
    architecture: str | None = None  # HF model_type when random-init (gpt2, llama, opt, gpt_neox, qwen2…)
    init: dict[str, Any] = field(default_factory=dict)  # HF config kwargs when name_or_path is None
    tokenizer: str | None = None  # tokenizer hub id / dir; None = same as name_or_path, or byte-level
    decoder_layers_attr: str | None = None  # dotted path of the decoder layer list, for unknown LMs
    trust_remote_code: bool = False  # needed by LMs whose code lives on the hub (MPT)


SPATIAL_VALUES = ("none", "space", "space_time")


@dataclass
class ResamplerConfig:
    depth: int = 6  # Perceiver layers
    heads: int = 8
    head_dim: int = 64
    num_latents: int = 64  # R: visual tokens per media item, whatever T, S or resolution
    ffw_mult: int = 4
    max_frames: int = 8  # T_max of the learned time embeddings; longer windows interpolate
    # Temporal pyramid: each level N cuts the window into N equal spans of frames, each resampled
    # by the same latents; [1] = Flamingo (all T*S tokens at once). [1, 4]: tokens for the whole
    # window and for each quarter (docs/model.md, "Time spans"). R / sum(levels) latents per span.
    time_spans: list[int] = field(default_factory=lambda: [1])
    # Learned positions added to the resampler's attention values only, so latents select by what
    # and when and report where: "none" (Flamingo), "space" (where each token is in its frame) or
    # "space_time" (where, times a projection of the frame's time embedding: how it moved).
    # docs/model.md, "Spatial values".
    spatial_values: str = "none"
    # How many of the R latents compete for media tokens as Slot Attention's slots do (softmax over
    # those latents, so each token is shared out among them); 0 = Flamingo (docs/model.md).
    competing_latents: int = 0

    def __post_init__(self) -> None:
        levels = self.time_spans
        if (
            not levels
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in levels)
            or self.num_latents % sum(levels)
        ):
            raise ConfigError(
                f"resampler.time_spans must be integer levels >= 1 whose sum divides num_latents={self.num_latents}, "
                f"got {self.time_spans}"
            )
        if (
            isinstance(self.competing_latents, bool)
            or not isinstance(self.competing_latents, int)
            or not 0 <= self.competing_latents <= self.num_latents
            or self.competing_latents % sum(levels)
        ):
            raise ConfigError(
                f"resampler.competing_latents must be an integer from 0 to num_latents={self.num_latents} that "
                f"sum(time_spans)={sum(levels)} divides, got {self.competing_latents!r}"
            )
        if self.spatial_values not in SPATIAL_VALUES:
            raise ConfigError(f"resampler.spatial_values must be one of {SPATIAL_VALUES}, got {self.spatial_values!r}")


@dataclass
class CrossAttentionConfig:
    every_n_layers: int = 1  # a GATED XATTN-DENSE block before every n-th decoder layer
    heads: int = 8
    head_dim: int = 64
    ffw_mult: int = 4
    # immediate: a text token sees only the media right before it (Flamingo);
    # all_previous: every earlier media item.
    media_attention: Literal["immediate", "all_previous"] = "immediate"


@dataclass
class RetrievalConfig:
    """The joint text-video space in which windows are found by question (docs/long_videos.md).

    A CLIP or SigLIP checkpoint (``AutoModel`` with ``get_text_features``/``get_image_features``):
    for real presets the vision tower's own contrastive partner (the same hub id); for the demo
    model, the text tower aligned to its vision tower by the recipe. None: no retrieval, windows
    are selected evenly."""

    name_or_path: str | None = None
    frames_per_window: int = 4  # frames of each window embedded (evenly spaced), then averaged

    def __post_init__(self) -> None:
        if not (isinstance(self.frames_per_window, int) and self.frames_per_window >= 1):
            raise ConfigError(f"retrieval.frames_per_window must be an integer >= 1, got {self.frames_per_window!r}")


@dataclass
class ModelConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    resampler: ResamplerConfig = field(default_factory=ResamplerConfig)
    xattn: CrossAttentionConfig = field(default_factory=CrossAttentionConfig)
    # gated_xattn: Flamingo's gated cross-attention; linear_prefix: LLaVA's projection spliced in
    connector: Literal["gated_xattn", "linear_prefix"] = "gated_xattn"
    # A learned embedding of each window's rank among the windows of one media item, added to its
    # latents (zero-initialised, so a model without it is this model at start): how many ranks it
    # tells apart (later windows share the last); 0 = off. Order across windows (docs/long_videos.md).
    window_order: int = 0
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    device: str = "auto"  # auto = cuda when available, else cpu
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto = fp32 CPU, bf16 GPU
    # Token decoding replays one recorded CUDA graph per step over a static KV cache (models/graphs.py):
    # a 1B LM's eager step is kernel-launch bound on a GPU. auto = on when the model is on CUDA
    # (and uses gated cross-attention); off = the eager loop everywhere. CPU is always eager.
    cuda_graphs: Literal["auto", "off"] = "auto"
    seed: int = 0  # seeds random init of everything Heron builds, so presets are reproducible
    name: str = "heron"  # a label carried into cache fingerprints and reports

    def __post_init__(self) -> None:
        if self.cuda_graphs not in ("auto", "off"):
            raise ConfigError(f"model.cuda_graphs must be 'auto' or 'off', got {self.cuda_graphs!r}")
        if not (
            isinstance(self.window_order, int) and not isinstance(self.window_order, bool) and self.window_order >= 0
        ):
            raise ConfigError(f"model.window_order must be an integer >= 0, got {self.window_order!r}")


def load_config(name_or_path: str | Path, section: str = "model") -> ModelConfig:
    """Load the ``model`` section of a preset name (``tiny``) or a YAML file into ModelConfig."""
    path = preset_path(name_or_path)
    data = read_yaml(path)
    if section not in data:
        raise ConfigError(f"{path} has no '{section}:' section")
    return from_dict(ModelConfig, data[section], f"{path.name}:{section}")
