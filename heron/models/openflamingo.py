"""OpenFlamingo checkpoints in Heron: same keys, same function as the reference code.

Reference: OpenFlamingo (Awadalla et al. 2023, github.com/mlfoundations/open_flamingo), the
``open-flamingo==2.0.1`` package with ``open-clip-torch==2.20.0``. Parity with it is tested on
small random models (tests/models/test_openflamingo.py; tools/openflamingo_parity/ writes the
fixture); docs/openflamingo.md lists the released checkpoints.

Where each key of an OpenFlamingo state dict goes:

    perceiver.latents, perceiver.layers.N.*, perceiver.norm.*  → encoder.resampler.* (same names)
    perceiver.frame_embs [F, d] (absent from released models)  → encoder.time_embeddings.embeddings [F, 1, d]
    lang_encoder.<layers>.N.gated_cross_attn_layer.*           → lm.<layers>.N.gated_cross_attn_layer.*
    lang_encoder.<layers>.N.decoder_layer.*                    → lm.<layers>.N.* (Heron's wrapper hides the prefix)
    lang_encoder.<any other LM key> (embeddings, norm, head)   → lm.<key>, after transformers' own legacy renames
    lang_encoder.old_decoder_blocks.*, .gated_cross_attn_layers.*   aliases of the two lines above: skipped
    vision_encoder.* (an open_clip VisionTransformer)          → encoder.backbone.tower.* (open_clip_to_hf_clip)

Released checkpoints hold only the trained parts (perceiver, gated layers, the LM's embedding
matrices with the trained ``<image>``/``<|endofchunk|>`` rows); the vision tower and the rest of
the LM come from their own sources. A full ``model.state_dict()`` (or a training checkpoint
``{"model_state_dict": ...}``) loads too, and then overrides those sources' weights.

OpenFlamingo has no time embeddings: Heron's are zeroed, so a one-frame media item computes
exactly OpenFlamingo's function, and a T-frame window is the perceiver over all T*S tokens,
which is what OpenFlamingo's perceiver does with F frames.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from heron.config import CrossAttentionConfig, LMConfig, ModelConfig, ResamplerConfig, VisionConfig
from heron.errors import CheckpointMismatchError, ConfigError
from heron.models.heron_model import HeronModel
from heron.models.loading import Trainable, apply_freezing, build_model, resolve_device, resolve_dtype, save_pretrained

log = logging.getLogger(__name__)

HEADS = 8  # OpenFlamingo hard-wires 8 heads (of 64) in the perceiver and the gated layers
SIDECAR = "openflamingo.json"  # beside a checkpoint.pt: which vision tower / LM / interval it goes with
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass(frozen=True)
class OpenFlamingoVariant:
    """A released OpenFlamingo model: its checkpoint repo and the backbones it was trained on."""

    vision: str  # HF CLIP id: the same OpenAI ViT-L/14 weights open_clip loads as ("ViT-L-14", "openai")
    lm: str  # HF causal LM id (OpenFlamingo's lang_encoder_path)
    tokenizer: str  # OpenFlamingo's tokenizer_path
    cross_attn_every_n_layers: int
    trust_remote_code: bool = False  # MPT's modelling code lives in its hub repo (docs/openflamingo.md)
    decoder_layers_attr: str | None = None  # for LMs Heron's lookup table does not know


_VIT_L = "openai/clip-vit-large-patch14"
VARIANTS: dict[str, OpenFlamingoVariant] = {
    "openflamingo/OpenFlamingo-3B-vitl-mpt1b": OpenFlamingoVariant(
        _VIT_L, "anas-awadalla/mpt-1b-redpajama-200b", "anas-awadalla/mpt-1b-redpajama-200b", 1,
        trust_remote_code=True, decoder_layers_attr="transformer.blocks"),
    "openflamingo/OpenFlamingo-3B-vitl-mpt1b-langinstruct": OpenFlamingoVariant(
        _VIT_L, "anas-awadalla/mpt-1b-redpajama-200b-dolly", "anas-awadalla/mpt-1b-redpajama-200b-dolly", 1,
        trust_remote_code=True, decoder_layers_attr="transformer.blocks"),
    "openflamingo/OpenFlamingo-4B-vitl-rpj3b": OpenFlamingoVariant(
        _VIT_L, "togethercomputer/RedPajama-INCITE-Base-3B-v1", "togethercomputer/RedPajama-INCITE-Base-3B-v1", 2),
    "openflamingo/OpenFlamingo-4B-vitl-rpj3b-langinstruct": OpenFlamingoVariant(
        _VIT_L, "togethercomputer/RedPajama-INCITE-Instruct-3B-v1", "togethercomputer/RedPajama-INCITE-Instruct-3B-v1", 2),
    "openflamingo/OpenFlamingo-9B-vitl-mpt7b": OpenFlamingoVariant(
        _VIT_L, "anas-awadalla/mpt-7b", "anas-awadalla/mpt-7b", 4,
        trust_remote_code=True, decoder_layers_attr="transformer.blocks"),
}


@dataclass
class OpenFlamingoSources:
    """Everything needed besides the checkpoint; each field None = not known yet."""

    vision: str | None = None  # HF CLIP id/dir, or a dir with open_clip_config.json + weights
    lm: str | None = None
    tokenizer: str | None = None  # None = the LM's
    cross_attn_every_n_layers: int | None = None  # None = read off the checkpoint
    trust_remote_code: bool | None = None
    decoder_layers_attr: str | None = None

    def fill(self, other: "OpenFlamingoSources | OpenFlamingoVariant | dict") -> None:
        """Fill the fields still None from ``other`` (a lower-priority source)."""
        values = other if isinstance(other, dict) else other.__dict__
        for name in self.__dataclass_fields__:
            if getattr(self, name) is None and values.get(name) is not None:
                setattr(self, name, values[name])


@dataclass
class LoadReport:
    """What load_openflamingo took from the checkpoint (the converter decides what to save from it)."""

    checkpoint: str
    lm_keys: list[str] = field(default_factory=list)  # LM (not gated) weights the checkpoint overrode
    vision_from_checkpoint: bool = False
    ignored: list[str] = field(default_factory=list)  # derived buffers (rotary inv_freq, causal masks)
    aliases: int = 0  # OpenFlamingo's duplicate module lists, skipped


# --- reading ---------------------------------------------------------------------------------


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors``.

    Unwraps training checkpoints ({"model_state_dict": ...}) and DDP/FSDP/checkpointing prefixes.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"OpenFlamingo checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle.UnpicklingError and friends: say what it means
            raise ConfigError(
                f"{path} is not a weights-only PyTorch checkpoint ({type(error).__name__}: {str(error)[:200]}); "
                "Heron never unpickles arbitrary objects"
            ) from None
    if isinstance(state, dict) and isinstance(state.get("model_state_dict"), dict):
        state = state["model_state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    wrappers = re.compile(r"(^module\.|_fsdp_wrapped_module\.|_checkpoint_wrapped_module\.)")
    return {wrappers.sub("", k): v for k, v in state.items()}


def resolve_sources(checkpoint: str | Path, given: OpenFlamingoSources) -> tuple[Path, OpenFlamingoSources]:
    """The checkpoint file and its sources: given > openflamingo.json beside it > the variant table."""
    sources = OpenFlamingoSources(**given.__dict__)
    text = str(checkpoint)
    if text in VARIANTS and not Path(text).exists():
        sources.fill(VARIANTS[text])
        return download_checkpoint(text), sources
    if text.startswith("openflamingo/") and not Path(text).exists():
        raise ConfigError(f"unknown OpenFlamingo model {text!r}; known: {', '.join(VARIANTS)}")
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"OpenFlamingo checkpoint {path} does not exist (give a checkpoint.pt or a released "
                          f"model's name: {', '.join(VARIANTS)})")
    sidecar = path.parent / SIDECAR
    if sidecar.is_file():
        data = json.loads(sidecar.read_text())
        unknown = sorted(set(data) - set(OpenFlamingoSources.__dataclass_fields__) - {"variant"})
        if unknown:
            raise ConfigError(f"unknown key(s) in {sidecar}: {', '.join(unknown)}")
        for name in ("vision", "lm", "tokenizer"):  # relative paths are relative to the sidecar
            if isinstance(data.get(name), str) and (path.parent / data[name]).exists():
                data[name] = str((path.parent / data[name]).resolve())
        sources.fill(data)
        if data.get("variant"):
            sources.fill(_variant(data["variant"]))
    cached = re.search(r"models--openflamingo--([^/\\]+)[/\\]snapshots[/\\]", str(path.resolve()))
    if cached and f"openflamingo/{cached.group(1)}" in VARIANTS:  # a checkpoint in the HF cache
        sources.fill(VARIANTS[f"openflamingo/{cached.group(1)}"])
    missing = [name for name in ("vision", "lm") if getattr(sources, name) is None]
    if missing:
        raise ConfigError(
            f"cannot tell which {' and '.join(missing)} {path} goes with: pass them (--vision/--lm, or "
            f"load_openflamingo(..., vision=, lm=)), put an {SIDECAR} beside it, or name a released model "
            f"({', '.join(VARIANTS)})"
        )
    return path, sources


def _variant(name: str) -> OpenFlamingoVariant:
    if name not in VARIANTS:
        raise ConfigError(f"unknown OpenFlamingo model {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def download_checkpoint(name: str) -> Path:
    """``checkpoint.pt`` of a released model, through the Hugging Face cache."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name, "checkpoint.pt"))
    except Exception as error:
        raise ConfigError(
            f"could not fetch {name}/checkpoint.pt from the Hugging Face hub ({type(error).__name__}); "
            "download it and pass its path instead"
        ) from None


# --- open_clip vision tower → Hugging Face CLIPVisionModel ----------------------------------

_CLIP_TOP = {
    "class_embedding": "embeddings.class_embedding",
    "positional_embedding": "embeddings.position_embedding.weight",
    "conv1.weight": "embeddings.patch_embedding.weight",
    "ln_pre.weight": "pre_layrnorm.weight", "ln_pre.bias": "pre_layrnorm.bias",
    "ln_post.weight": "post_layernorm.weight", "ln_post.bias": "post_layernorm.bias",
}
_CLIP_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
               "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
_CLIP_UNUSED = {"proj"}  # the image-text projection of the pooled output; the tokens never see it


def open_clip_vision_config(model_cfg: dict) -> tuple[dict, bool]:
    """open_clip model config → (HF CLIPVisionConfig kwargs, keep_cls).

    Only the plain CLIP ViT is supported; open_clip's variants that a CLIPVisionModel cannot
    express (layer scale, attentional pooling, patch norm, timm or ResNet towers) are refused.
    """
    vision = dict(model_cfg.get("vision_cfg", {}))
    unsupported = [name for name, default in (("timm_model_name", None), ("ls_init_value", None),
                                              ("attentional_pool", False), ("input_patchnorm", False))
                   if vision.get(name, default) not in (default,)]
    if isinstance(vision.get("layers", 12), (list, tuple)):
        unsupported.append("layers (a ResNet tower)")
    size, patch = vision.get("image_size", 224), vision.get("patch_size", 16)
    if isinstance(size, (list, tuple)) or isinstance(patch, (list, tuple)):
        unsupported.append("non-square image_size/patch_size")
    if unsupported:
        raise ConfigError(f"open_clip vision tower options Heron cannot convert to a CLIPVisionModel: {', '.join(unsupported)}")
    width = vision.get("width", 768)
    init = dict(
        hidden_size=width, intermediate_size=int(width * vision.get("mlp_ratio", 4.0)),
        num_hidden_layers=vision.get("layers", 12), num_attention_heads=width // vision.get("head_width", 64),
        image_size=size, patch_size=patch, layer_norm_eps=1e-5, projection_dim=model_cfg.get("embed_dim", width),
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
                return {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        raise ConfigError(f"{self.directory} has open_clip_config.json but no open_clip_model.safetensors "
                          "or open_clip_pytorch_model.bin")


def find_open_clip(vision: str) -> OpenClipTower | None:
    """The open_clip tower at ``vision`` (a dir, or a hub repo in open_clip's layout), else None (HF CLIP)."""
    directory = Path(vision)
    if not directory.is_dir() and re.fullmatch(r"[\w.-]+/[\w.-]+", vision):
        try:
            from huggingface_hub import hf_hub_download

            config_file = Path(hf_hub_download(vision, "open_clip_config.json"))
            directory = config_file.parent
            for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
                try:
                    hf_hub_download(vision, name)
                    break
                except Exception:
                    continue
        except Exception:
            return None  # not an open_clip repo (or offline): let transformers load it as HF CLIP
    config_file = directory / "open_clip_config.json"
    if not config_file.is_file():
        return None
    data = json.loads(config_file.read_text())
    return OpenClipTower(directory, data.get("model_cfg", data), data.get("preprocess_cfg", {}))


def _vision_config(sources: OpenFlamingoSources) -> tuple[VisionConfig, OpenClipTower | None]:
    tower = find_open_clip(sources.vision)
    if tower is None:
        return VisionConfig(kind="clip", name_or_path=sources.vision), None
    init, keep_cls = open_clip_vision_config(tower.model_cfg)
    pre = tower.preprocess_cfg
    if pre.get("resize_mode", "shortest") not in ("shortest", "squash"):
        raise ConfigError(f"open_clip resize_mode {pre['resize_mode']!r} is not supported (shortest, squash)")
    return VisionConfig(
        kind="clip", init=init, keep_cls=keep_cls,
        image_mean=list(pre.get("mean", OPENAI_CLIP_MEAN)), image_std=list(pre.get("std", OPENAI_CLIP_STD)),
        resize_mode="bilinear" if pre.get("interpolation") == "bilinear" else "bicubic",
        center_crop=pre.get("resize_mode", "shortest") == "shortest",
    ), tower


# --- the checkpoint's structure ----------------------------------------------------------------


def _structure(state: dict[str, torch.Tensor], source: str) -> dict:
    """Perceiver and gated-layer sizes, and where the gated layers sit, read off the keys."""
    gated: dict[str, set[int]] = {}
    for key in state:
        found = re.match(r"lang_encoder\.(.+)\.(\d+)\.gated_cross_attn_layer\.", key)
        if found:
            gated.setdefault(found.group(1), set()).add(int(found.group(2)))
    if len(gated) > 1:
        raise CheckpointMismatchError(source, unexpected=[f"gated layers under both {' and '.join(sorted(gated))}"])
    path, indices = next(iter(gated.items())) if gated else ("<decoder layers>", {0})
    first = min(indices)
    prefix = f"lang_encoder.{path}.{first}.gated_cross_attn_layer."
    needed = ["perceiver.latents", "perceiver.layers.0.0.to_q.weight", "perceiver.layers.0.1.1.weight",
              prefix + "attn.to_q.weight", prefix + "ff.1.weight"]
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointMismatchError(source, missing=missing)
    num_latents, dim = state["perceiver.latents"].shape
    perceiver_inner = state["perceiver.layers.0.0.to_q.weight"].shape[0]
    xattn_inner, lang_dim = state[prefix + "attn.to_q.weight"].shape
    if perceiver_inner % HEADS or xattn_inner % HEADS:
        raise CheckpointMismatchError(source, mismatched=[
            ("perceiver / gated to_q.weight rows", (perceiver_inner, xattn_inner), (f"multiples of {HEADS} heads",))])
    return dict(
        layers_path=path, xattn_layers=sorted(indices), every_n=first + 1, dim=dim,
        resampler=ResamplerConfig(
            depth=len({k.split(".")[2] for k in state if k.startswith("perceiver.layers.")}), heads=HEADS,
            head_dim=perceiver_inner // HEADS, num_latents=num_latents,
            ffw_mult=state["perceiver.layers.0.1.1.weight"].shape[0] // dim,
            max_frames=state["perceiver.frame_embs"].shape[0] if "perceiver.frame_embs" in state else 8,
        ),
        xattn=CrossAttentionConfig(
            every_n_layers=first + 1, heads=HEADS, head_dim=xattn_inner // HEADS,
            ffw_mult=state[prefix + "ff.1.weight"].shape[0] // lang_dim, media_attention="immediate",
        ),
    )


# --- key mapping ---------------------------------------------------------------------------------

# Buffers that older transformers saved and newer ones recompute from the config.
_DERIVED_BUFFERS = re.compile(r"(rotary_emb\.inv_freq|\.attn\.(masked_)?bias|\.attention\.(masked_)?bias)$")


def _lm_key_renamer(lm: torch.nn.Module) -> Callable[[str], str]:
    """transformers' own legacy renames for ``lm`` (e.g. GPT-NeoX ``embed_out`` → ``lm_head``)."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming

        renamings = [t for t in get_model_conversion_mapping(lm) if isinstance(t, WeightRenaming)]
    except Exception:  # transformers moved its internals: names stay as they are, mismatches are reported
        renamings = []

    def rename(key: str) -> str:
        for renaming in renamings:
            key, _ = renaming.rename_source_key(key)
        return key

    return rename


def map_checkpoint(state: dict[str, torch.Tensor], model: HeronModel, layers_path: str, report: LoadReport):
    """OpenFlamingo keys → (Heron keys → tensors, open_clip vision weights, unexpected keys)."""
    rename = _lm_key_renamer(model.lm)
    ignore = [re.compile(p) for p in getattr(model.lm, "_keys_to_ignore_on_load_unexpected", None) or []]
    layer_key = re.compile(rf"{re.escape(layers_path)}\.(\d+)\.(?:decoder_layer\.)?(.+)")
    mapped, vision, unexpected = {}, {}, []
    for key, value in state.items():
        if key == "perceiver.frame_embs":  # [F, d]: one embedding per frame, added before flattening
            mapped["encoder.time_embeddings.embeddings"] = value[:, None]
        elif key.startswith("perceiver.") and key != "perceiver.media_time_embs":
            mapped["encoder.resampler." + key[len("perceiver."):]] = value
        elif key.startswith("vision_encoder."):
            vision[key[len("vision_encoder."):]] = value
        elif key.startswith(("lang_encoder.old_decoder_blocks.", "lang_encoder.gated_cross_attn_layers.")):
            report.aliases += 1
        elif key.startswith("lang_encoder."):
            inner = key[len("lang_encoder."):]
            layer = layer_key.fullmatch(inner)
            if layer and layer.group(2).startswith("gated_cross_attn_layer."):
                mapped[f"lm.{inner}"] = value
            else:
                name = rename(f"{layers_path}.{layer.group(1)}.{layer.group(2)}" if layer else inner)
                if _DERIVED_BUFFERS.search(name) or any(p.search(name) for p in ignore):
                    report.ignored.append(key)
                else:
                    mapped[f"lm.{name}"] = value
        else:
            unexpected.append(key)  # includes perceiver.media_time_embs: Heron has no per-media-index embedding
    return mapped, vision, unexpected


def _embedding_keys(model: HeronModel) -> list[str]:
    """Heron state-dict names of the LM's input (and, if untied, output) embedding weights."""
    wanted = {id(m): m for m in (model.lm.get_input_embeddings(), model.lm.get_output_embeddings()) if m is not None}
    return [f"lm.{name}.weight" for name, module in model.lm.named_modules() if id(module) in wanted]


def _match_vocabulary(model: HeronModel, mapped: dict[str, torch.Tensor]) -> None:
    """Size the LM's embeddings as OpenFlamingo did: the checkpoint's rows, else len(tokenizer).

    OpenFlamingo calls ``resize_token_embeddings(len(tokenizer))``, which also shrinks
    (RedPajama and MPT pad their vocabularies to 50432 rows; OpenFlamingo has 50280).
    """
    rows = {mapped[k].shape[0] for k in _embedding_keys(model) if k in mapped}
    target = max(rows) if rows else len(model.tokenizer)
    if target < len(model.tokenizer):
        raise CheckpointMismatchError("the checkpoint", mismatched=[("LM embeddings", (target,), (f">= {len(model.tokenizer)} tokens",))])
    if model.lm.get_input_embeddings().weight.shape[0] != target:
        model.lm.resize_token_embeddings(target, mean_resizing=False)


def _load_vision(model: HeronModel, visual: dict[str, torch.Tensor], source: str) -> tuple[list, list, list]:
    """Convert and copy open_clip weights into the tower; returns (missing, unexpected, mismatched)."""
    tower = model.encoder.backbone.tower
    expected = tower.state_dict()
    prefix = "vision_model." if "vision_model.embeddings.class_embedding" in expected else ""
    converted, unexpected = open_clip_to_hf_clip(visual)
    converted = {prefix + k: v for k, v in converted.items()}
    missing = sorted(set(expected) - set(converted) - {k for k in expected if k.endswith("position_ids")})
    unexpected = [f"{source}:{k}" for k in unexpected] + [k for k in converted if k not in expected]
    mismatched = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in converted.items()
                  if k in expected and v.shape != expected[k].shape]
    if not (missing or unexpected or mismatched):
        tower.load_state_dict(converted, strict=False)
    return [f"encoder.backbone.tower.{k}" for k in missing], unexpected, mismatched


# --- loading -------------------------------------------------------------------------------------


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
    trainable: Trainable = "connector",
) -> HeronModel:
    """A Heron model computing what OpenFlamingo computes with ``checkpoint``.

    ``checkpoint``: a released model's name (``"openflamingo/OpenFlamingo-4B-vitl-rpj3b"``,
    fetched from the hub) or a local ``checkpoint.pt``. The other arguments override what the
    variant table, or an ``openflamingo.json`` beside the checkpoint, say. ``vision`` is an HF
    CLIP id/dir or an open_clip dir (converted); ``lm`` an HF causal LM id/dir.
    Every unknown, missing or mis-shaped key is reported in one CheckpointMismatchError.
    """
    given = OpenFlamingoSources(vision, lm, tokenizer, cross_attn_every_n_layers, trust_remote_code, decoder_layers_attr)
    return _load(checkpoint, given, device=device, dtype=dtype, trainable=trainable)[0]


def _load(checkpoint, given: OpenFlamingoSources, *, device, dtype, trainable) -> tuple[HeronModel, LoadReport]:
    path, sources = resolve_sources(checkpoint, given)
    source = str(path)
    state = read_checkpoint(path)
    structure = _structure(state, source)
    every = sources.cross_attn_every_n_layers or structure["every_n"]
    if every != structure["every_n"]:
        raise ConfigError(f"{source} has gated cross-attention before layers {structure['xattn_layers']} "
                          f"(every {structure['every_n']}), not every {every}")
    vision_cfg, open_clip_tower = _vision_config(sources)
    cfg = ModelConfig(
        vision=vision_cfg,
        lm=LMConfig(name_or_path=sources.lm, tokenizer=sources.tokenizer, trust_remote_code=bool(sources.trust_remote_code),
                    decoder_layers_attr=sources.decoder_layers_attr or structure["layers_path"]),
        resampler=structure["resampler"], xattn=structure["xattn"], connector="gated_xattn",
        name=str(checkpoint) if str(checkpoint) in VARIANTS else f"openflamingo:{path.parent.name}/{path.name}",
    )
    model = build_model(cfg)
    if model.xattn_layer_indices != structure["xattn_layers"]:
        raise CheckpointMismatchError(source, missing=[
            f"gated layers: checkpoint has {structure['xattn_layers']}, the LM's every-{every} gives {model.xattn_layer_indices}"])
    if model.encoder.dim != structure["dim"]:
        raise CheckpointMismatchError(source, mismatched=[("perceiver.latents", (structure["dim"],), (model.encoder.dim,))])

    report = LoadReport(checkpoint=source)
    mapped, visual, unexpected = map_checkpoint(state, model, structure["layers_path"], report)
    _match_vocabulary(model, mapped)
    expected = model.state_dict()
    own = {k for k in expected if k.startswith("encoder.resampler.") or ".gated_cross_attn_layer." in k}
    missing = sorted(own - set(mapped))
    unexpected += sorted(k for k in mapped if k not in expected)
    mismatched = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in mapped.items()
                  if k in expected and v.shape != expected[k].shape]
    if visual or open_clip_tower is not None:
        vision_missing, vision_unexpected, vision_mismatched = _load_vision(
            model, visual or open_clip_tower.weights(), "vision_encoder" if visual else str(open_clip_tower.directory))
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
    log.info("loaded %s: %d tensors (%d LM weights overridden, %d derived buffers ignored, %d aliases skipped)",
             source, len(mapped), len(report.lm_keys), len(report.ignored), report.aliases)
    apply_freezing(model, trainable)
    target = resolve_device(device or cfg.device)
    model.to(device=target, dtype=resolve_dtype(dtype or cfg.dtype, target))
    return (model.train(False) if trainable == "none" else model), report


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
    given = OpenFlamingoSources(vision, lm, tokenizer, cross_attn_every_n_layers, trust_remote_code, decoder_layers_attr)
    model, report = _load(checkpoint, given, device="cpu", dtype="float32", trainable="none")
    settings, vision_cfg = model.encoder.backbone.settings, model.config.vision
    # Pin the preprocessing in heron.yaml: a tower saved into the directory has no processor config.
    vision_cfg.image_size, vision_cfg.image_mean, vision_cfg.image_std = settings.image_size, list(settings.mean), list(settings.std)
    vision_cfg.resize_mode, vision_cfg.center_crop = settings.resize_mode, settings.center_crop
    if report.vision_from_checkpoint:
        model.config.vision.name_or_path = None  # the checkpoint's tower: save it
    if report.lm_keys:
        model.config.lm.name_or_path = None  # the base LM's weights changed: save it
    return save_pretrained(model, out)
