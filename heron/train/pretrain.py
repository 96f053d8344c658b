"""Tiny backbones from scratch for the demo model, since no pretrained weights can be downloaded.

The real method in miniature: Heron's recipe starts from a contrastively pretrained vision tower
and a pretrained causal LM, both frozen in stage 1. Real use loads CLIP/SigLIP and an HF LLM by
hub id (``vision.name_or_path`` / ``lm.name_or_path``); here they are made on the spot:

    train_tokenizer   a word-level tokenizer (``tokenizers``) over the benchmark's text, saved as
                      PreTrainedTokenizerFast, with Heron's <image>, <|endofchunk|>, <PAD> built in
    pretrain_vision   a CLIPModel (vision + text tower) from config, trained with the contrastive
                      loss on frame/caption pairs; only its vision tower is kept (CLIPVisionModel)
    pretrain_lm       a GPT-2/Llama-style causal LM from config, trained on the benchmark's text
                      (question–answer dialogues in the prompt format, and clip captions)

Each is written with ``save_pretrained`` into a folder that the Heron config then names, so the
demo model goes through the same ``from_pretrained`` loading path as a real backbone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from tqdm import tqdm
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    PreTrainedTokenizerFast,
)

from heron.config import DecodeConfig, VisionConfig
from heron.data.synthetic import ClipMetadata, make_frame_caption
from heron.encoders.preprocess import preprocess
from heron.encoders.vision import preprocess_settings
from heron.models.tokenizer import END_OF_CHUNK_TOKEN, EOS_TOKEN, IMAGE_TOKEN, PAD_TOKEN
from heron.train.config import LMPretrainConfig, RetrievalPretrainConfig, VisionPretrainConfig
from heron.train.dataset import MediaLoader, MediaRef
from heron.train.schedule import warmup_cosine

log = logging.getLogger(__name__)
UNK_TOKEN = "[UNK]"
SPECIAL_TOKENS = [EOS_TOKEN, PAD_TOKEN, UNK_TOKEN, END_OF_CHUNK_TOKEN, IMAGE_TOKEN]


# --- tokenizer -----------------------------------------------------------------------------------


def train_tokenizer(texts: list[str], out: str | Path, *, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``texts`` (words and punctuation marks), saved to ``out``."""
    core = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    if lowercase:
        core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+ | [^\w\s]+
    from tokenizers.trainers import WordLevelTrainer

    core.train_from_iterator(texts, WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        additional_special_tokens=[END_OF_CHUNK_TOKEN, IMAGE_TOKEN],
    )
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(out)
    return tokenizer


# --- language model ------------------------------------------------------------------------------


def pretrain_lm(
    cfg: LMPretrainConfig, tokenizer: PreTrainedTokenizerFast, texts: list[str], *, seed: int = 0, progress: bool = True
) -> Path:
    """Train a causal LM from config on ``texts`` (every token scored); save it and the tokenizer."""
    torch.manual_seed(seed)
    ids = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    longest = max(len(x) for x in ids)
    init = {
        **cfg.init,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.architecture, **init))
    context = getattr(lm.config, "n_positions", None) or getattr(lm.config, "max_position_embeddings", 0)
    if longest > context:
        raise ValueError(f"the longest pretraining text is {longest} tokens, more than the LM's context {context}")
    optimizer = torch.optim.AdamW(lm.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    rng = np.random.default_rng(seed)
    lm.train()
    bar = tqdm(range(cfg.steps), desc="pretrain lm", disable=not progress, unit="step")
    for step in bar:
        rows = [ids[i] for i in rng.integers(len(ids), size=cfg.batch_size)]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)], mask[r, : len(row)] = torch.tensor(row), 1
        labels = input_ids.masked_fill(mask == 0, -100)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * warmup_cosine(step, total=cfg.steps, warmup=cfg.warmup_steps, min_ratio=0.1)
        loss = lm(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    lm.eval()
    lm.save_pretrained(cfg.out)
    tokenizer.save_pretrained(cfg.out)
    (Path(cfg.out) / "pretrain.json").write_text(
        json.dumps({"final_loss": round(loss.item(), 5), "steps": cfg.steps, "texts": len(texts)})
    )
    return Path(cfg.out)


# --- vision tower --------------------------------------------------------------------------------


def frame_caption_pairs(
    clips_file: str | Path,
    decode: DecodeConfig,
    *,
    limit: int,
    cache_dir: str | None = None,
    grid: int = 3,
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Decoded frames uint8 [N, H, W, 3] of the first ``limit`` clips and what each one shows."""
    frames, scenes = frame_scenes(clips_file, decode, limit=limit, cache_dir=cache_dir, progress=progress)
    return frames, [make_frame_caption(meta, index, grid=grid) for meta, index in scenes]


def frame_scenes(
    clips_file: str | Path, decode: DecodeConfig, *, limit: int, cache_dir: str | None = None, progress: bool = True
) -> tuple[np.ndarray, list[tuple[ClipMetadata, int]]]:
    """Decoded frames uint8 [N, H, W, 3] of the first ``limit`` clips, and per frame its scene
    and frame index: a sampled frame at time t (seconds from the clip start) is frame
    round(t * clip fps) of the scene, whose objects and positions are in clips.jsonl."""
    clips_file = Path(clips_file)
    loader = MediaLoader(decode, cache_dir)
    frames, scenes = [], []
    lines = clips_file.read_text().splitlines()[:limit]
    for line in tqdm(lines, desc="frames for vision pretraining", disable=not progress, unit="clip"):
        record = json.loads(line)
        meta = ClipMetadata.from_dict(record)
        windows = loader.windows(
            MediaRef(video=str(clips_file.parent / record["video"]), start=record["start"], end=record["end"])
        )
        clip_frames = np.concatenate(windows)
        for k, frame in enumerate(clip_frames):
            frames.append(frame)
            scenes.append((meta, min(meta.config.num_frames - 1, round(k / decode.fps * meta.config.fps))))
    return np.stack(frames), scenes


def _clip_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric contrastive loss; every pair ``same`` marks (bool [images, texts], e.g.
    identical captions) counts as a positive; each row and column needs one."""
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    logits = scale.exp().clamp(max=100) * image @ text.T  # [N, N]
    by_image = same.float() / same.float().sum(-1, keepdim=True)
    by_text = same.T.float() / same.T.float().sum(-1, keepdim=True)
    return 0.5 * (
        torch.sum(-by_image * logits.log_softmax(-1), -1).mean()
        + torch.sum(-by_text * logits.T.log_softmax(-1), -1).mean()
    )


def pretrain_vision(
    cfg: VisionPretrainConfig,
    tokenizer: PreTrainedTokenizerFast,
    frames: np.ndarray,
    captions: list[str],
    *,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Contrastive pretraining of a CLIP (vision + text) from config; saves the vision tower."""
    torch.manual_seed(seed)
    text_config = {
        **cfg.text_init,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.eos_token_id,
    }
    clip = CLIPModel(CLIPConfig(text_config=text_config, vision_config=cfg.init, projection_dim=cfg.projection_dim))
    # The exact preprocessing Heron applies to this tower (heron.encoders.vision), defaults of CLIP.
    settings = preprocess_settings(VisionConfig(kind="clip", image_size=clip.config.vision_config.image_size), clip)
    vocab = sorted(set(captions))
    caption_index = torch.tensor([vocab.index(c) for c in captions]) if len(vocab) < 50_000 else None
    encoded = [tokenizer(c)["input_ids"] + [tokenizer.eos_token_id] for c in vocab]
    width = max(len(x) for x in encoded)
    text_ids = torch.full((len(vocab), width), tokenizer.pad_token_id)
    text_mask = torch.zeros((len(vocab), width), dtype=torch.long)
    for r, row in enumerate(encoded):
        text_ids[r, : len(row)], text_mask[r, : len(row)] = torch.tensor(row), 1
    optimizer = torch.optim.AdamW(clip.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    rng = np.random.default_rng(seed)
    clip.train()
    bar = tqdm(range(cfg.steps), desc="pretrain vision (contrastive)", disable=not progress, unit="step")
    for step in bar:
        pick = torch.from_numpy(rng.integers(len(frames), size=cfg.batch_size))
        pixels = preprocess(torch.from_numpy(frames[pick.numpy()]), settings, torch.float32)
        which = caption_index[pick]
        image = clip.get_image_features(pixel_values=pixels).pooler_output
        text = clip.get_text_features(input_ids=text_ids[which], attention_mask=text_mask[which]).pooler_output
        loss = _clip_loss(image, text, clip.logit_scale, which[:, None] == which[None, :])
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * warmup_cosine(step, total=cfg.steps, warmup=cfg.warmup_steps, min_ratio=0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    if cfg.clip_out:
        clip.eval()
        clip.save_pretrained(cfg.clip_out)
        tokenizer.save_pretrained(cfg.clip_out)
    tower = CLIPVisionModel(CLIPVisionConfig(**cfg.init))
    tower.load_state_dict(clip.vision_model.state_dict())  # strict: the same tower, now on its own
    tower.eval()
    tower.save_pretrained(cfg.out)
    (Path(cfg.out) / "pretrain.json").write_text(
        json.dumps(
            {"final_loss": round(loss.item(), 5), "steps": cfg.steps, "frames": len(frames), "captions": len(vocab)}
        )
    )
    return Path(cfg.out)


# --- retrieval text tower ------------------------------------------------------------------------


def retrieval_texts(meta: ClipMetadata, frame: int, rng: np.random.Generator) -> tuple[str, Callable[[set], bool]]:
    """A question-like text about what ``frame`` shows, and which frames it is true of (a test
    on a frame's set of (colour, shape) pairs): the retrieval tower learns to find the frames a
    question is about from the way questions are asked ("is there a red square in the video?",
    "what color is the square?", "which appeared first, the red square or the blue circle?",
    "how many objects appear in the video?"), in the forms of the long-video questions."""
    shown = [(o.color, o.shape) for o in meta.objects if o.visible(frame)]
    if not shown:
        return "nothing", lambda pairs: not pairs
    color, shape = shown[int(rng.integers(len(shown)))]
    # the other object an order question names: any other colour-shape pair (it need not be shown)
    others = [(c, s) for c in meta.config.colors for s in meta.config.shapes if (c, s) != (color, shape)]
    other = others[int(rng.integers(len(others)))]
    forms: list[tuple[str, Callable[[set], bool]]] = [
        (f"{color} {shape}", lambda pairs: (color, shape) in pairs),
        (f"is there a {color} {shape} in the video?", lambda pairs: (color, shape) in pairs),
        (f"when does the {color} {shape} appear?", lambda pairs: (color, shape) in pairs),
        (f"which direction does the {color} {shape} move?", lambda pairs: (color, shape) in pairs),
        (f"what color is the {shape}?", lambda pairs: any(s == shape for _, s in pairs)),
        (f"what shape is the {color} object?", lambda pairs: any(c == color for c, _ in pairs)),
        (
            f"which appeared first, the {color} {shape} or the {other[0]} {other[1]}?",
            lambda pairs: (color, shape) in pairs or other in pairs,
        ),
        ("how many objects appear in the video?", lambda pairs: bool(pairs)),
    ]
    return forms[int(rng.integers(len(forms)))]


def pretrain_retrieval(
    cfg: RetrievalPretrainConfig,
    clip_dir: str | Path,
    tokenizer: PreTrainedTokenizerFast,
    frames: np.ndarray,
    scenes: list[tuple[ClipMetadata, int]],
    *,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Tune the text side of the CLIP at ``clip_dir`` on question-like texts (vision tower frozen,
    its pooled outputs computed once): frames [N, H, W, 3] with, per frame, (its scene, frame index).
    Saves the whole CLIP (and the tokenizer) to ``cfg.out``: the model's retrieval embedder."""
    torch.manual_seed(seed)
    clip = CLIPModel.from_pretrained(clip_dir)
    settings = preprocess_settings(VisionConfig(kind="clip", image_size=clip.config.vision_config.image_size), clip)
    clip.vision_model.requires_grad_(False)
    with torch.no_grad():
        pooled = torch.cat(
            [
                clip.vision_model(
                    pixel_values=preprocess(torch.from_numpy(frames[i : i + 512]), settings, torch.float32)
                ).pooler_output
                for i in range(0, len(frames), 512)
            ]
        )  # [N, d_vision]
    pairs = [{(o.color, o.shape) for o in meta.objects if o.visible(t)} for meta, t in scenes]
    trainable = [p for p in clip.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    rng = np.random.default_rng(seed)
    clip.train()
    bar = tqdm(range(cfg.steps), desc="pretrain retrieval (text tower)", disable=not progress, unit="step")
    for step in bar:
        pick = rng.integers(len(frames), size=cfg.batch_size)
        texts, tests = zip(*(retrieval_texts(*scenes[i], rng) for i in pick))
        truth = torch.tensor([[test(pairs[j]) for j in pick] for test in tests])  # [texts, frames]
        tokens = tokenizer([t + tokenizer.eos_token for t in texts], padding=True, return_tensors="pt")
        text = clip.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        text = text if isinstance(text, torch.Tensor) else text.pooler_output
        image = clip.visual_projection(pooled[torch.from_numpy(pick)])
        loss = _clip_loss(image, text, clip.logit_scale, truth.T)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * warmup_cosine(step, total=cfg.steps, warmup=cfg.warmup_steps, min_ratio=0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    clip.eval()
    clip.save_pretrained(cfg.out)
    tokenizer.save_pretrained(cfg.out)
    (Path(cfg.out) / "pretrain.json").write_text(
        json.dumps({"final_loss": round(loss.item(), 5), "steps": cfg.steps, "frames": len(frames)})
    )
    return Path(cfg.out)
