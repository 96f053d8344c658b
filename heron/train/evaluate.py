"""Accuracy per question category on a QA manifest (heron.data.synthetic format), as the pipeline answers.

Each clip is decoded like the pipeline decodes it (DecodeConfig: fps, windows of window_frames,
size), every window goes through ``model.encode`` and the windows' latents are concatenated in time
order into one media item; the question is put in ``heron.pipeline.prompts.question_prompt`` and
the answer is generated greedily. The headline metric is generation accuracy: the normalised
generated text equals the normalised answer. Closed-choice accuracy (the choice with the highest
likelihood under the model) is reported next to it.

Ablation ``time-embeddings``: the same questions with the time embeddings zeroed, so the resampler
sees the frames of a window without their order (its attention is permutation invariant).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from heron.config import DecodeConfig
from heron.config.model_source import find_path
from heron.data.synthetic.config import NUMBER_WORDS
from heron.errors import ConfigError
from heron.models.heron_model import HeronModel
from heron.pipeline.prompts import question_prompt
from heron.train.dataset import IGNORE_INDEX, MediaLoader, MediaRef, qa_text, tokenize_sample

log = logging.getLogger(__name__)

ABLATIONS = ("time-embeddings",)
TRAINING_FILE = "training.json"  # written next to a trained model: decode settings, recipe, losses


@dataclass(frozen=True)
class Question:
    id: str
    media: MediaRef
    question: str
    answer: str
    category: str
    choices: tuple[str, ...]
    evidence: tuple[tuple[float, float], ...] = ()  # spans (s) that hold the answer (long videos)

    @property
    def group(self) -> str:
        """Category, with attribute split into colour and shape questions."""
        if self.category == "attribute":
            return "attribute/color" if self.question.lower().startswith("what color") else "attribute/shape"
        return self.category


def manifest_path(data: str | Path, split: str = "test") -> Path:
    """A manifest file, a split folder holding manifest.jsonl, or a dataset root with <split>/."""
    data = Path(data)
    for candidate in (data, data / "manifest.jsonl", data / split / "manifest.jsonl"):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no QA manifest at {data} (looked for {data}/manifest.jsonl and {data}/{split}/manifest.jsonl); make one "
        f"with `heron data synth --out {data} --n 100 --split {split}` (or `heron pretrain configs/demo.yaml`)"
    )


def read_questions(data: str | Path, *, split: str = "test", limit: int | None = None) -> list[Question]:
    path = manifest_path(data, split)
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        media = MediaRef(video=str(path.parent / item["video"]), start=item.get("start"), end=item.get("end"))
        out.append(
            Question(
                item["id"],
                media,
                item["question"],
                item["answer"],
                item.get("category", "all"),
                tuple(item.get("choices", ())),
                tuple((float(a), float(b)) for a, b in item.get("evidence", ())),
            )
        )
        if limit is not None and len(out) >= limit:
            break
    return out


_ARTICLES = {"a", "an", "the"}
_DIGITS = {str(i): word for i, word in enumerate(NUMBER_WORDS)}


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation or articles, digits as number words: "The Red." -> "red"."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(_DIGITS.get(w, w) for w in words if w not in _ARTICLES)


@contextmanager
def time_embeddings_zeroed(model: HeronModel) -> Iterator[None]:
    """Temporarily set the learned time embeddings to zero (restored on exit, even on error)."""
    table = model.encoder.time_embeddings.embeddings
    saved = table.detach().clone()
    with torch.no_grad():
        table.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            table.copy_(saved)


class ClipEncoder:
    """Media → latents [k*R, d] via ``model.encode`` per window, as the pipeline computes them."""

    def __init__(self, model: HeronModel, loader: MediaLoader):
        self.model, self.loader = model, loader
        self._windows: dict[MediaRef, list[np.ndarray]] = {}

    @torch.no_grad()
    def __call__(self, ref: MediaRef) -> torch.Tensor:
        if ref not in self._windows:
            self._windows[ref] = self.loader.windows(ref)
        return torch.cat([self.model.encode(w) for w in self._windows[ref]])


def _summary(rows: list[dict]) -> dict:
    n = len(rows)
    return {
        "n": n,
        "accuracy": round(sum(r["correct"] for r in rows) / n, 4) if n else None,
        "choice_accuracy": round(sum(r["choice_correct"] for r in rows) / n, 4)
        if n and all(r["choice_correct"] is not None for r in rows)
        else None,
        "chance": round(float(np.mean([1 / len(r["choices"]) for r in rows])), 4)
        if n and all(r["choices"] for r in rows)
        else None,
        "answers_outside_choices": round(sum(r["outside"] for r in rows) / n, 4) if n else None,
    }


def summarize(rows: list[dict]) -> dict:
    by_category, by_group = defaultdict(list), defaultdict(list)
    for r in rows:
        by_category[r["category"]].append(r)
        if r["group"] != r["category"]:
            by_group[r["group"]].append(r)
    return {
        "overall": _summary(rows),
        "categories": {k: _summary(v) for k, v in sorted(by_category.items())},
        "subcategories": {k: _summary(v) for k, v in sorted(by_group.items())},
    }


@torch.no_grad()
def answer_questions(
    model: HeronModel,
    questions: list[Question],
    loader: MediaLoader,
    *,
    batch_size: int = 64,
    max_new_tokens: int = 8,
    score_choices: bool = True,
    progress: bool = False,
) -> list[dict]:
    """One row per question: generated text, correctness, closed-choice answer."""
    from tqdm import tqdm

    model.eval()
    clips = ClipEncoder(model, loader)
    rows = []
    for start in tqdm(range(0, len(questions), batch_size), disable=not progress, desc="eval", unit="batch"):
        part = questions[start : start + batch_size]
        latents = [clips(q.media) for q in part]
        texts = model.generate(
            [question_prompt(q.question) for q in part], [[lat] for lat in latents], max_new_tokens=max_new_tokens
        )
        picks = _score_choices(model, part, latents) if score_choices else [None] * len(part)
        for q, text, pick in zip(part, texts, picks):
            generated = normalize_answer(text)
            expected = normalize_answer(q.answer)
            rows.append(
                {
                    "id": q.id,
                    "category": q.category,
                    "group": q.group,
                    "question": q.question,
                    "answer": q.answer,
                    "generated": text.strip(),
                    "correct": generated == expected,
                    "choices": list(q.choices),
                    "outside": bool(q.choices) and generated not in map(normalize_answer, q.choices),
                    "choice": pick,
                    "choice_correct": None if pick is None else pick == q.answer,
                }
            )
    return rows


def _score_choices(model: HeronModel, part: list[Question], latents: list[torch.Tensor]) -> list[str | None]:
    """The choice with the highest total log-likelihood of " <choice><|endofchunk|>" after the prompt."""
    rows, owners = [], []
    for i, q in enumerate(part):
        for choice in q.choices:
            rows.append(
                tokenize_sample(
                    model.tokenizer,
                    qa_text([(q.question, choice)]),
                    labels="answers",
                    image_token_id=model.image_token_id,
                )
            )
            owners.append((i, choice))
    if not rows:
        return [None] * len(part)
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), model.tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, labs) in enumerate(rows):
        input_ids[r, : len(ids)], labels[r, : len(ids)], mask[r, : len(ids)] = torch.tensor(ids), torch.tensor(labs), 1
    media, media_mask = model.pad_media([[latents[i]] for i, _ in owners])
    out = model(input_ids.to(model.device), mask.to(model.device), media, labels=labels, media_mask=media_mask)
    logp = out.logits[:, :-1].float().log_softmax(-1)
    target = out.labels[:, 1:].to(logp.device)
    scored = target != IGNORE_INDEX
    token_logp = logp.gather(-1, target.clamp(min=0)[..., None])[..., 0] * scored
    totals = token_logp.sum(-1).tolist()
    best: dict[int, tuple[float, str]] = {}
    for (i, choice), total in zip(owners, totals):
        if i not in best or total > best[i][0]:
            best[i] = (total, choice)
    return [best[i][1] if i in best else None for i in range(len(part))]


def evaluate(
    model: HeronModel,
    questions: list[Question],
    decode: DecodeConfig,
    *,
    ablations: tuple[str, ...] = (),
    batch_size: int = 64,
    score_choices: bool = True,
    cache_dir: str | None = None,
    progress: bool = False,
) -> tuple[dict, list[dict]]:
    """Report (overall / per category / per colour-vs-shape attribute, and each ablation) and rows."""
    unknown = set(ablations) - set(ABLATIONS)
    if unknown:
        raise ConfigError(f"unknown ablation(s) {sorted(unknown)}; known: {', '.join(ABLATIONS)}")
    clock = time.perf_counter()
    loader = MediaLoader(decode, cache_dir)
    rows = answer_questions(
        model, questions, loader, batch_size=batch_size, score_choices=score_choices, progress=progress
    )
    report = {
        "metric": "generation accuracy: greedy answer to question_prompt(question), normalised, equals the answer",
        "questions": len(questions),
        "clips": len({q.media for q in questions}),
        "decode": {"fps": decode.fps, "window_frames": decode.window_frames, "size": decode.size},
        **summarize(rows),
        "ablations": {},
    }
    for name in ablations:
        with time_embeddings_zeroed(model):
            ablated = answer_questions(
                model, questions, loader, batch_size=batch_size, score_choices=score_choices, progress=progress
            )
        report["ablations"][name] = summarize(ablated)
    report["seconds"] = round(time.perf_counter() - clock, 1)
    return report, rows


def decode_config_of(model_dir: str | Path) -> DecodeConfig | None:
    """The decode settings a trained model was trained with (its training.json), if recorded; the
    directory is found as ``load_model`` finds it (also from outside the repository root)."""
    found = find_path(model_dir)
    path = (found if found is not None else Path(model_dir)) / TRAINING_FILE
    if not path.is_file():
        return None
    return DecodeConfig(**json.loads(path.read_text())["decode"])


def format_report(report: dict) -> str:
    """A plain-text table of a report (what ``heron eval`` prints without --json)."""

    def line(name: str, s: dict) -> str:
        choice = f"{s['choice_accuracy']:.3f}" if s.get("choice_accuracy") is not None else "  -  "
        chance = f"{s['chance']:.3f}" if s.get("chance") is not None else "  -  "
        return f"  {name:<18} {s['n']:>6} {s['accuracy']:>9.3f} {choice:>9} {chance:>7}"

    out = []
    for title, block in [("", report)] + [
        (f" (ablation: {k} zeroed)", v) for k, v in report.get("ablations", {}).items()
    ]:
        out.append(f"accuracy{title}")
        out.append(f"  {'category':<18} {'n':>6} {'generated':>9} {'choice':>9} {'chance':>7}")
        for name, s in list(block["categories"].items()) + list(block["subcategories"].items()):
            out.append(line(name, s))
        out.append(line("overall", block["overall"]))
    return "\n".join(out)
