"""The released OpenFlamingo models, and which vision tower / LM a checkpoint goes with.

Sources of a checkpoint, highest priority first: what the caller gives, an ``openflamingo.json``
beside it, the variant table (by name, or by where the hub cache put it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from heron.errors import ConfigError
from heron.models.openflamingo.hub import download_checkpoint

SIDECAR = "openflamingo.json"  # beside a checkpoint.pt: which vision tower / LM / interval it goes with


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
        _VIT_L,
        "anas-awadalla/mpt-1b-redpajama-200b",
        "anas-awadalla/mpt-1b-redpajama-200b",
        1,
        trust_remote_code=True,
        decoder_layers_attr="transformer.blocks",
    ),
    "openflamingo/OpenFlamingo-3B-vitl-mpt1b-langinstruct": OpenFlamingoVariant(
        _VIT_L,
        "anas-awadalla/mpt-1b-redpajama-200b-dolly",
        "anas-awadalla/mpt-1b-redpajama-200b-dolly",
        1,
        trust_remote_code=True,
        decoder_layers_attr="transformer.blocks",
    ),
    "openflamingo/OpenFlamingo-4B-vitl-rpj3b": OpenFlamingoVariant(
        _VIT_L, "togethercomputer/RedPajama-INCITE-Base-3B-v1", "togethercomputer/RedPajama-INCITE-Base-3B-v1", 2
    ),
    "openflamingo/OpenFlamingo-4B-vitl-rpj3b-langinstruct": OpenFlamingoVariant(
        _VIT_L,
        "togethercomputer/RedPajama-INCITE-Instruct-3B-v1",
        "togethercomputer/RedPajama-INCITE-Instruct-3B-v1",
        2,
    ),
    "openflamingo/OpenFlamingo-9B-vitl-mpt7b": OpenFlamingoVariant(
        _VIT_L,
        "anas-awadalla/mpt-7b",
        "anas-awadalla/mpt-7b",
        4,
        trust_remote_code=True,
        decoder_layers_attr="transformer.blocks",
    ),
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

    def fill(self, other: OpenFlamingoSources | OpenFlamingoVariant | dict) -> None:
        """Fill the fields still None from ``other`` (a lower-priority source)."""
        values = other if isinstance(other, dict) else other.__dict__
        for name in self.__dataclass_fields__:
            if getattr(self, name) is None and values.get(name) is not None:
                setattr(self, name, values[name])


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
        raise ConfigError(
            f"OpenFlamingo checkpoint {path} does not exist (give a checkpoint.pt or a released "
            f"model's name: {', '.join(VARIANTS)})"
        )
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
