"""open_clip vision towers → Hugging Face CLIPVisionModel: config, weights, preprocessing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from heron.config import VisionConfig
from heron.errors import ConfigError
from heron.models.openflamingo.checkpoint import read_checkpoint
from heron.models.openflamingo.hub import open_clip_repo_dir
from heron.models.openflamingo.variants import OpenFlamingoSources

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

_CLIP_TOP = {
    "class_embedding": "embeddings.class_embedding",
    "positional_embedding": "embeddings.position_embedding.weight",
    "conv1.weight": "embeddings.patch_embedding.weight",
    "ln_pre.weight": "pre_layrnorm.weight",
    "ln_pre.bias": "pre_layrnorm.bias",
    "ln_post.weight": "post_layernorm.weight",
    "ln_post.bias": "post_layernorm.bias",
}
_CLIP_BLOCK = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}
_CLIP_UNUSED = {"proj"}  # the image-text projection of the pooled output; the tokens never see it


def open_clip_vision_config(model_cfg: dict) -> tuple[dict, bool]:
    """open_clip model config → (HF CLIPVisionConfig kwargs, keep_cls).

    Only the plain CLIP ViT is supported; open_clip's variants that a CLIPVisionModel cannot
    express (layer scale, attentional pooling, patch norm, timm or ResNet towers) are refused.
    """
    vision = dict(model_cfg.get("vision_cfg", {}))
    unsupported = [
        name
        for name, default in (
            ("timm_model_name", None),
            ("ls_init_value", None),
            ("attentional_pool", False),
            ("input_patchnorm", False),
        )
        if vision.get(name, default) not in (default,)
    ]
    if isinstance(vision.get("layers", 12), (list, tuple)):
        unsupported.append("layers (a ResNet tower)")
    size, patch = vision.get("image_size", 224), vision.get("patch_size", 16)
    if isinstance(size, (list, tuple)) or isinstance(patch, (list, tuple)):
        unsupported.append("non-square image_size/patch_size")
    if unsupported:
        raise ConfigError(
            f"open_clip vision tower options Heron cannot convert to a CLIPVisionModel: {', '.join(unsupported)}"
        )
    width = vision.get("width", 768)
    init = dict(
        hidden_size=width,
        intermediate_size=int(width * vision.get("mlp_ratio", 4.0)),
        num_hidden_layers=vision.get("layers", 12),
        num_attention_heads=width // vision.get("head_width", 64),
        image_size=size,
        patch_size=patch,
        layer_norm_eps=1e-5,
        projection_dim=model_cfg.get("embed_dim", width),
        # OpenAI's towers were trained with QuickGELU; open_clip uses exact GELU unless told otherwise
        hidden_act="quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu",
    )
    # open_clip 2.20 returns tokens = the last hidden state without CLS (no ln_post); with global
    # average pooling it returns every token, CLS included.
    return init, bool(vision.get("global_average_pool", False))


def open_clip_to_hf_clip(visual: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """open_clip ``visual.*`` weights (prefix stripped) → CLIPVisionModel names (without ``vision_model.``).

    nn.MultiheadAttention's packed ``in_proj`` [3d, d] splits into q, k, v in that order.
    Returns (converted, unexpected keys).
    """
    out, unexpected = {}, []
    for key, value in visual.items():
        block = re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)", key)
        packed = re.fullmatch(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", key)
        if key in _CLIP_TOP:
            out[_CLIP_TOP[key]] = value
        elif packed:
            layer, kind = packed.groups()
            for name, part in zip("qkv", value.chunk(3, dim=0)):
                out[f"encoder.layers.{layer}.self_attn.{name}_proj.{kind}"] = part.contiguous()
        elif block and block.group(2) in _CLIP_BLOCK:
            layer, name, kind = block.groups()
            out[f"encoder.layers.{layer}.{_CLIP_BLOCK[name]}.{kind}"] = value
        elif key not in _CLIP_UNUSED:
            unexpected.append(key)
    return out, unexpected


@dataclass
class OpenClipTower:
    """An open_clip tower on disk: its config and (lazily read) weights."""

    directory: Path
    model_cfg: dict
    preprocess_cfg: dict

    def weights(self) -> dict[str, torch.Tensor]:
        """``visual.*`` weights with the prefix stripped."""
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            if (self.directory / name).is_file():
                state = read_checkpoint(self.directory / name)
                return {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
        raise ConfigError(
            f"{self.directory} has open_clip_config.json but no open_clip_model.safetensors "
            "or open_clip_pytorch_model.bin"
        )


def find_open_clip(vision: str) -> OpenClipTower | None:
    """The open_clip tower at ``vision`` (a dir, or a hub repo in open_clip's layout), else None (HF CLIP)."""
    directory = open_clip_repo_dir(vision) or Path(vision)
    config_file = directory / "open_clip_config.json"
    if not config_file.is_file():
        return None
    data = json.loads(config_file.read_text())
    return OpenClipTower(directory, data.get("model_cfg", data), data.get("preprocess_cfg", {}))


def vision_config(sources: OpenFlamingoSources) -> tuple[VisionConfig, OpenClipTower | None]:
    tower = find_open_clip(sources.vision)
    if tower is None:
        return VisionConfig(kind="clip", name_or_path=sources.vision), None
    init, keep_cls = open_clip_vision_config(tower.model_cfg)
    pre = tower.preprocess_cfg
    if pre.get("resize_mode", "shortest") not in ("shortest", "squash"):
        raise ConfigError(f"open_clip resize_mode {pre['resize_mode']!r} is not supported (shortest, squash)")
    return VisionConfig(
        kind="clip",
        init=init,
        keep_cls=keep_cls,
        image_mean=list(pre.get("mean", OPENAI_CLIP_MEAN)),
        image_std=list(pre.get("std", OPENAI_CLIP_STD)),
        resize_mode="bilinear" if pre.get("interpolation") == "bilinear" else "bicubic",
        center_crop=pre.get("resize_mode", "shortest") == "shortest",
    ), tower


def load_vision(tower: torch.nn.Module, visual: dict[str, torch.Tensor], source: str) -> tuple[list, list, list]:
    """Convert and copy open_clip weights into a CLIPVisionModel ``tower``; returns (missing,
    unexpected, mismatched), named as in a Heron model's state dict."""
    expected = tower.state_dict()
    prefix = "vision_model." if "vision_model.embeddings.class_embedding" in expected else ""
    converted, unexpected = open_clip_to_hf_clip(visual)
    converted = {prefix + k: v for k, v in converted.items()}
    missing = sorted(set(expected) - set(converted) - {k for k in expected if k.endswith("position_ids")})
    unexpected = [f"{source}:{k}" for k in unexpected] + [k for k in converted if k not in expected]
    mismatched = [
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in converted.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if not (missing or unexpected or mismatched):
        tower.load_state_dict(converted, strict=False)
    return [f"encoder.backbone.tower.{k}" for k in missing], unexpected, mismatched
