"""Write the OpenFlamingo parity fixture from the reference implementation (open-flamingo 2.0.1).

Run it with the reference venv's Python (build it with build_reference_venv.sh), from anywhere:

    /work/ofref-venv/bin/python tools/openflamingo_parity/make_fixture.py [--out DIR]

It builds small OpenFlamingo models with random weights through the reference's own factory
(``create_model_and_transforms``): a tiny open_clip ViT from a custom model config, a tiny OPT or
GPT-NeoX language model, ``cross_attn_every_n_layers`` 1 and 2, non-zero gates, every weight
perturbed so that a mapping mistake (a swapped LayerNorm, a transposed projection) changes the
output. The perceiver and gated cross-attention keep the reference's hard-wired sizes (depth 6,
8 heads of 64, 64 latents), as in the released checkpoints.

Written under DIR (default tests/fixtures/openflamingo/):
    tokenizer/                  byte-level BPE tokenizer (the LM's, before OpenFlamingo adds tokens)
    vision-{quickgelu,gelu}/    open_clip_config.json + open_clip_model.safetensors (visual.* only),
                                the layout of open_clip models on the Hugging Face hub
    lm-{opt,gpt_neox}/          the base language models (config.json + model.safetensors)
    {family}-every{n}/
        checkpoint.pt           the trainable-only state dict, filtered by OpenFlamingo's own
                                filter_state_dict_to_trainable: the layout of the released checkpoints;
                                for gpt_neox-every2 instead the full model.state_dict() (vision tower,
                                whole LM and OpenFlamingo's aliased module lists) wrapped as a
                                training checkpoint {"epoch", "model_state_dict"}
        openflamingo.json       which vision tower / LM / tokenizer / interval the checkpoint goes with
        reference.safetensors   inputs and the reference's outputs (see below)
        reference.json          prompt, token ids, greedy tokens, versions, the smallest greedy margin

reference.safetensors: images uint8 [2, H, W, 3]; pixel_values [2, 3, H, W] (the reference's
image processor on those images); input_ids, attention_mask [1, L]; vision_tokens [2, S, d]
(``vision_encoder(pixels)[1]``); media_latents [1, 2, R, d] (the perceiver's output per image);
logits [1, L, V] (teacher-forced forward); generated [1, N] (greedy, see reference.json);
two_frame_features [1, 1, 2, S, d] and two_frame_latents [1, 1, R, d] (the perceiver on both
images as two frames of one media item: OpenFlamingo's perceiver accepts F > 1 even though its
``_encode_vision_x`` does not).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import types
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

# train_utils imports wandb for logging only; the one function used here does not touch it.
sys.modules.setdefault("wandb", types.ModuleType("wandb"))

import open_clip  # noqa: E402
from open_flamingo import create_model_and_transforms  # noqa: E402
from open_flamingo.train.train_utils import filter_state_dict_to_trainable  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, OPTConfig, OPTForCausalLM, PreTrainedTokenizerFast  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EOS = "<|endoftext|>"
PROMPT = "<image>An image of a red cat.<|endofchunk|><image>An image of"
MAX_NEW_TOKENS = 12
VISION = {  # name -> (open_clip model config, seed)
    "quickgelu": dict(
        embed_dim=16,
        quick_gelu=True,
        vision_cfg=dict(image_size=32, layers=2, width=12, head_width=6, patch_size=8),
        text_cfg=dict(context_length=16, vocab_size=64, width=16, heads=2, layers=1),
    ),
    "gelu": dict(
        embed_dim=16,
        quick_gelu=False,
        vision_cfg=dict(image_size=24, layers=2, width=8, head_width=4, patch_size=8, mlp_ratio=3.0),
        text_cfg=dict(context_length=16, vocab_size=64, width=16, heads=2, layers=1),
    ),
}
LMS = {  # family -> (config, vision tower it is paired with)
    "opt": (
        OPTConfig(
            vocab_size=257,
            hidden_size=16,
            num_hidden_layers=4,
            ffn_dim=32,
            num_attention_heads=2,
            word_embed_proj_dim=16,
            max_position_embeddings=128,
            bos_token_id=256,
            eos_token_id=256,
            pad_token_id=256,
        ),
        "quickgelu",
    ),
    "gpt_neox": (
        GPTNeoXConfig(
            vocab_size=257,
            hidden_size=16,
            num_hidden_layers=4,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=128,
            rotary_pct=0.5,
            bos_token_id=256,
            eos_token_id=256,
        ),
        "gelu",
    ),
}
LM_CLASSES = {"opt": OPTForCausalLM, "gpt_neox": GPTNeoXForCausalLM}
INTERVALS = (1, 2)


def perturb(module: torch.nn.Module, generator: torch.Generator, scale: float = 0.1) -> None:
    """Move every weight off its initial value (LayerNorms off 1/0, biases off 0)."""
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)


def write_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    """256 byte symbols + EOS, no merges: deterministic and version-independent."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    vocab[EOS] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, bos_token=EOS)
    tokenizer.save_pretrained(directory)
    return tokenizer


def write_vision(out: Path, name: str, cfg: dict, registry: Path) -> dict[str, torch.Tensor]:
    """A random open_clip ViT (perturbed), saved in the hub layout; returns its visual state dict."""
    (registry / f"heron-tiny-vit-{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(registry / f"heron-tiny-vit-{name}.json")
    torch.manual_seed(100 + len(name))
    clip = open_clip.create_model(f"heron-tiny-vit-{name}", pretrained=None)
    perturb(clip.visual, torch.Generator().manual_seed(200 + len(name)))
    directory = out / f"vision-{name}"
    directory.mkdir(parents=True, exist_ok=True)
    preprocess = dict(mean=list(open_clip.OPENAI_DATASET_MEAN), std=list(open_clip.OPENAI_DATASET_STD))
    (directory / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess}, indent=2)
    )
    visual = {k: v.contiguous() for k, v in clip.visual.state_dict().items()}
    save_file({f"visual.{k}": v for k, v in visual.items()}, str(directory / "open_clip_model.safetensors"))
    return visual


def write_lm(out: Path, family: str) -> Path:
    config, _ = LMS[family]
    torch.manual_seed(300 + len(family))
    lm = LM_CLASSES[family](config)
    perturb(lm, torch.Generator().manual_seed(400 + len(family)), scale=0.2)
    directory = out / f"lm-{family}"
    lm.save_pretrained(directory, safe_serialization=True)
    return directory


def greedy(model, vision_x, input_ids, attention_mask, tokenizer) -> tuple[torch.Tensor, float]:
    """The reference's greedy continuation with Heron's generation rules applied to it.

    Heron stops at EOS or <|endofchunk|> and never generates <image> or the pad token (a
    generated <image> would have no media). The reference's generate() stops at
    <|endofchunk|> by default; here it is given both stop tokens and HF's ``bad_words_ids``
    for the two banned ones, so both sides pick the argmax over the same allowed tokens.
    Returns the new tokens [1, N] and the smallest top-1 / top-2 logit gap along the way.
    """
    ids = tokenizer.convert_tokens_to_ids
    out = model.generate(
        vision_x,
        input_ids,
        attention_mask,
        max_new_tokens=MAX_NEW_TOKENS,
        num_beams=1,
        do_sample=False,
        eos_token_id=[tokenizer.eos_token_id, ids("<|endofchunk|>")],
        bad_words_ids=[[ids("<image>")], [tokenizer.pad_token_id]],
        pad_token_id=tokenizer.pad_token_id,
        output_scores=True,
        return_dict_in_generate=True,
    )
    margins = [float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores]
    return out.sequences[:, input_ids.shape[1] :], min(margins)


def write_case(
    out: Path, family: str, every: int, vision: dict[str, dict[str, torch.Tensor]], images: np.ndarray, *, full: bool
) -> dict:
    _, vision_name = LMS[family]
    torch.manual_seed(500 + 10 * every + len(family))
    model, image_processor, tokenizer = create_model_and_transforms(
        f"heron-tiny-vit-{vision_name}",
        None,
        str(out / f"lm-{family}"),
        str(out / "tokenizer"),
        cross_attn_every_n_layers=every,
    )
    model.vision_encoder.load_state_dict(vision[vision_name])
    generator = torch.Generator().manual_seed(600 + 10 * every + len(family))
    perturb(model.perceiver, generator)
    perturb(model.lang_encoder.gated_cross_attn_layers, generator)
    perturb(model.lang_encoder.get_input_embeddings(), generator)  # trained in OpenFlamingo: differs from the base LM
    with torch.no_grad():
        for block in model.lang_encoder.gated_cross_attn_layers:
            if block is not None:
                block.attn_gate.uniform_(0.5, 1.0, generator=generator)
                block.ff_gate.uniform_(0.5, 1.0, generator=generator)
    model.eval()

    directory = out / f"{family}-every{every}"
    directory.mkdir(parents=True, exist_ok=True)
    if full:  # what a training run's save_checkpoint would write without the filter
        torch.save({"epoch": 0, "model_state_dict": model.state_dict()}, directory / "checkpoint.pt")
    else:  # the layout of the released checkpoints
        torch.save(filter_state_dict_to_trainable(model, model.state_dict()), directory / "checkpoint.pt")
    (directory / "openflamingo.json").write_text(
        json.dumps(
            {
                "vision": f"../vision-{vision_name}",
                "lm": f"../lm-{family}",
                "tokenizer": "../tokenizer",
                "cross_attn_every_n_layers": every,
            },
            indent=2,
        )
        + "\n"
    )

    pixels = torch.stack([image_processor(Image.fromarray(image)) for image in images])  # [2, 3, H, W]
    vision_x = pixels[None, :, None]  # [1, T_img=2, F=1, 3, H, W]
    tokenizer.padding_side = "left"
    batch = tokenizer([PROMPT], return_tensors="pt")
    with torch.no_grad():
        logits = model(vision_x, batch["input_ids"], batch["attention_mask"]).logits
        vision_tokens = model.vision_encoder(pixels)[1]  # [2, S, d]
        media_latents = model.perceiver(vision_tokens[None, :, None])  # [1, 2, R, d]
        two_frames = vision_tokens[None, None]  # [1, T=1, F=2, S, d]
        two_frame_latents = model.perceiver(two_frames)  # [1, 1, R, d]
        generated, margin = greedy(model, vision_x, batch["input_ids"], batch["attention_mask"], tokenizer)
    save_file(
        {
            "images": torch.from_numpy(images).contiguous(),
            "pixel_values": pixels.contiguous(),
            "input_ids": batch["input_ids"].contiguous(),
            "attention_mask": batch["attention_mask"].contiguous(),
            "vision_tokens": vision_tokens.contiguous(),
            "media_latents": media_latents.contiguous(),
            "logits": logits.contiguous(),
            "generated": generated.contiguous(),
            "two_frame_features": two_frames.contiguous(),
            "two_frame_latents": two_frame_latents.contiguous(),
        },
        str(directory / "reference.safetensors"),
    )
    meta = {
        "prompt": PROMPT,
        "input_ids": batch["input_ids"][0].tolist(),
        "generated": generated[0].tolist(),
        "generated_text": tokenizer.decode(generated[0]),
        "max_new_tokens": MAX_NEW_TOKENS,
        "greedy_min_margin": margin,
        "len_tokenizer": len(tokenizer),
        "special_tokens": {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endofchunk|>", "<image>", "<PAD>", EOS)},
        "checkpoint_layout": "full" if full else "trainable",
        "checkpoint_keys": len(
            torch.load(directory / "checkpoint.pt").get("model_state_dict", {})
            if full
            else torch.load(directory / "checkpoint.pt")
        ),
        "versions": {
            p: version(p) for p in ("open-flamingo", "torch", "transformers", "open-clip-torch", "tokenizers")
        },
    }
    text = json.dumps(meta, indent=2)
    text = re.sub(
        r"\[\s+([-\d,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text
    )  # ids on one line
    (directory / "reference.json").write_text(text + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "openflamingo")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out / "tokenizer")
    with tempfile.TemporaryDirectory() as registry:
        vision = {name: write_vision(out, name, cfg, Path(registry)) for name, cfg in VISION.items()}
        for family in LMS:
            write_lm(out, family)
        for family, (_, vision_name) in LMS.items():
            size = VISION[vision_name]["vision_cfg"]["image_size"]
            images = np.random.default_rng(7).integers(0, 256, size=(2, size, size, 3), dtype=np.uint8)
            for every in INTERVALS:
                meta = write_case(out, family, every, vision, images, full=(family, every) == ("gpt_neox", 2))
                print(
                    f"{family}-every{every}: {meta['checkpoint_keys']} checkpoint keys, "
                    f"greedy {meta['generated']} (min margin {meta['greedy_min_margin']:.3g})"
                )
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
