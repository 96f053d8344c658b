"""Interleaved training samples: JSONL of media + text with ``<image>`` markers, and their batches.

One line per sample (docs/training.md):

    {"id": "train-000042",
     "media": [{"video": "videos/000042.mp4", "start": 0.0, "end": 2.0}, {"image": "cat.png"}],
     "text": "<image>Question: What color is the square? Answer: red<|endofchunk|><image>..."}

The k-th ``<image>`` is where the k-th media item belongs; several media–text pairs in one sample
are Flamingo's few-shot sequences. A video range is decoded like the pipeline decodes it (same
DecodeConfig: frames sampled at ``fps``, windows of ``window_frames``); its windows' visual
tokens are concatenated in time order into one media item, as the answer stage does. Paths are
relative to the JSONL file. Labels: by default only answers are scored, i.e. the text after each
"Answer:" up to and including its ``<|endofchunk|>`` (so the model learns to stop); a record's
optional ``"labels": "text"`` scores all of its text instead (captions), so files with different
kinds of samples can be mixed in one stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from heron.config import DecodeConfig
from heron.data.atomic import atomic_path
from heron.errors import ConfigError, MediaCountMismatchError, PromptTooLongError
from heron.models.tokenizer import END_OF_CHUNK_TOKEN, IMAGE_TOKEN
from heron.pipeline.decode import VideoDecoder, output_size
from heron.pipeline.prompts import question_prompt

IGNORE_INDEX = -100  # label of tokens that carry no loss (prompt, <image>, padding)
LABEL_MODES = ("answers", "text")  # which tokens are scored: answers only, or all text
_ANSWER = re.compile(r"Answer:(.*?)" + re.escape(END_OF_CHUNK_TOKEN), re.DOTALL)


@dataclass(frozen=True)
class MediaRef:
    """One media item: a video time range (seconds; None = from the start / to the end) or an image."""

    video: str | None = None
    image: str | None = None
    start: float | None = None
    end: float | None = None

    @property
    def path(self) -> str:
        return self.video or self.image  # type: ignore[return-value]


@dataclass(frozen=True)
class InterleavedSample:
    id: str
    text: str  # with one <image> per media item
    media: tuple[MediaRef, ...]
    labels: str | None = None  # this sample's label mode ("answers" | "text"); None = the dataset's


def read_samples(path: str | Path) -> list[InterleavedSample]:
    """Parse and check an interleaved JSONL file; media paths become absolute."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"training data {path} does not exist; write it with heron.train.dataset.write_qa_samples or "
            "write_caption_samples (the demo recipe writes train.data.train and train.data.captions)"
        )
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{where} is not JSON: {error}") from None
        if not isinstance(record.get("text"), str):
            raise ConfigError(f"{where} needs a 'text' string")
        media = tuple(_media_ref(item, path.parent, where) for item in record.get("media", []))
        markers = record["text"].count(IMAGE_TOKEN)
        if markers != len(media):
            raise MediaCountMismatchError(markers, len(media), row=number)
        labels = record.get("labels")
        if labels not in (None, *LABEL_MODES):
            raise ConfigError(f"{where}: 'labels' must be one of {list(LABEL_MODES)}, got {labels!r}")
        samples.append(InterleavedSample(str(record.get("id", f"{path.stem}-{number}")), record["text"], media, labels))
    if not samples:
        raise ConfigError(f"{path} holds no samples")
    return samples


def _media_ref(item: dict, root: Path, where: str) -> MediaRef:
    if not isinstance(item, dict) or ("video" in item) == ("image" in item):
        raise ConfigError(f"{where}: each media item needs exactly one of 'video' or 'image', got {item!r}")
    unknown = set(item) - {"video", "image", "start", "end"}
    if unknown:
        raise ConfigError(f"{where}: unknown media key(s) {sorted(unknown)}")
    if "image" in item:
        return MediaRef(image=os.path.normpath(root / item["image"]))
    start, end = item.get("start"), item.get("end")
    return MediaRef(
        video=os.path.normpath(root / item["video"]),
        start=None if start is None else float(start),
        end=None if end is None else float(end),
    )


# --- labels ------------------------------------------------------------------------------------


def answer_spans(text: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of each answer: after "Answer:", through its <|endofchunk|>."""
    return [(m.start(1), m.end()) for m in _ANSWER.finditer(text)]


def tokenize_sample(
    tokenizer, text: str, *, labels: str = "answers", image_token_id: int
) -> tuple[list[int], list[int]]:
    """Token ids and labels of one sample's text, tokenised exactly as ``HeronModel.prepare`` does.

    ``labels="answers"``: tokens that start inside an answer span keep their id, the rest get
    IGNORE_INDEX; ``"text"``: every token but ``<image>``. Special tokens the tokenizer adds
    (BOS) are never labelled.
    """
    encoded = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    if labels == "text":
        keep = [start < end and token != image_token_id for token, (start, end) in zip(ids, offsets)]
    elif labels == "answers":
        spans = answer_spans(text)
        keep = [start < end and any(a <= start < b for a, b in spans) for start, end in offsets]
    else:
        raise ConfigError(f"labels must be one of {list(LABEL_MODES)}, got {labels!r}")
    return list(ids), [t if k else IGNORE_INDEX for t, k in zip(ids, keep)]


# --- media -------------------------------------------------------------------------------------


class MediaLoader:
    """MediaRef → windows of uint8 frames [T, H, W, 3], decoded like the pipeline decodes them.

    With ``cache_dir`` the decoded frames of each item are kept as one .npy file, keyed by the
    file's path, size and mtime, the time range and the decode settings.
    """

    def __init__(self, decode: DecodeConfig, cache_dir: str | Path | None = None):
        self.decode = decode
        self.cache_dir = Path(cache_dir) if cache_dir else None
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def key(self, ref: MediaRef) -> str:
        stat = os.stat(ref.path)
        settings = {k: v for k, v in asdict(self.decode).items() if k != "url_timeout_s"}
        blob = json.dumps(
            [
                os.path.abspath(ref.path),
                stat.st_size,
                stat.st_mtime_ns,
                ref.start,
                ref.end,
                ref.image is not None,
                settings,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:20]

    def windows(self, ref: MediaRef) -> list[np.ndarray]:
        frames = self._cached(ref) if self.cache_dir else self._decode(ref)
        if ref.image is not None:
            return [frames]
        size = self.decode.window_frames
        return [frames[i : i + size] for i in range(0, len(frames), size)]

    def _cached(self, ref: MediaRef) -> np.ndarray:
        path = self.cache_dir / f"{self.key(ref)}.npy"
        if path.exists():
            return np.load(path)
        frames = self._decode(ref)
        with atomic_path(path) as tmp:  # two trainers sharing the cache never read a half file
            np.save(tmp, frames)
        return frames

    def _decode(self, ref: MediaRef) -> np.ndarray:
        """All sampled frames of the item, uint8 [N, H, W, 3] (an image is one frame)."""
        if ref.image is not None:
            return _read_image(ref.image, self.decode.size)[None]
        decoder = VideoDecoder(ref.video, self.decode, start=ref.start, end=ref.end)
        return np.concatenate([batch.frames for batch in decoder])


def _read_image(path: str, size) -> np.ndarray:
    """An image file (anything FFmpeg reads: png, jpg, ppm...) as uint8 [H, W, 3], resized like
    decoded video frames."""
    import av

    try:
        with av.open(path) as container:
            image = torch.from_numpy(next(container.decode(video=0)).to_ndarray(format="rgb24")).permute(2, 0, 1)
    except (av.error.FFmpegError, StopIteration) as error:
        raise ConfigError(f"cannot read image {path}: {error}") from None
    height, width = output_size(image.shape[2], image.shape[1], size)
    resized = torch.nn.functional.interpolate(
        image[None].float(), size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


# --- batches -----------------------------------------------------------------------------------


@dataclass
class Batch:
    """A right-padded batch. input_ids/attention_mask/labels [B, L]; media[b][m] = (key, MediaRef).

    Media are loaded by whoever encodes them (heron.train.media), so that items whose features
    are already cached are never decoded again.
    """

    ids: list[str]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    media: list[list[tuple[str, MediaRef]]]

    @property
    def label_count(self) -> int:
        """Tokens that carry loss (after the one-step shift, the first position never does)."""
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())


class InterleavedDataset:
    """Samples of one or more JSONL files (mixed), tokenised once; ``batch(indices)`` loads media and pads.

    ``labels`` is the label mode of samples that do not name their own (a record's ``"labels"``).
    """

    def __init__(
        self,
        paths: str | Path | list[str | Path],
        tokenizer,
        loader: MediaLoader,
        *,
        labels: str = "answers",
        max_length: int | None = None,
    ):
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not self.paths:
            raise ConfigError("no training data files given")
        self.tokenizer, self.loader = tokenizer, loader
        self.samples = [sample for path in self.paths for sample in read_samples(path)]
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self._keys: dict[MediaRef, str] = {}
        self.tokens = [
            tokenize_sample(tokenizer, s.text, labels=s.labels or labels, image_token_id=self.image_token_id)
            for s in self.samples
        ]
        longest = max(len(ids) for ids, _ in self.tokens)
        if max_length is not None and longest > max_length:
            raise PromptTooLongError(longest, max_length)

    def __len__(self) -> int:
        return len(self.samples)

    def media_key(self, ref: MediaRef) -> str:
        if ref not in self._keys:
            self._keys[ref] = self.loader.key(ref)
        return self._keys[ref]

    def batch(self, indices: list[int]) -> Batch:
        pad = self.tokenizer.pad_token_id
        width = max(len(self.tokens[i][0]) for i in indices)
        input_ids = torch.full((len(indices), width), pad, dtype=torch.long)
        labels = torch.full((len(indices), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
        media = []
        for row, i in enumerate(indices):
            ids, labs = self.tokens[i]
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids)] = torch.tensor(labs)
            attention_mask[row, : len(ids)] = 1
            media.append([(self.media_key(ref), ref) for ref in self.samples[i].media])
        return Batch([self.samples[i].id for i in indices], input_ids, attention_mask, labels, media)


class SampleOrder:
    """Which samples come next: a fresh permutation per epoch from (seed, epoch), and a cursor.

    The whole state is (epoch, cursor), so a checkpoint resumes the data exactly where it was.
    """

    def __init__(self, size: int, seed: int, *, epoch: int = 0, cursor: int = 0):
        self.size, self.seed, self.epoch, self.cursor = size, seed, epoch, cursor
        self._perm = self._permutation(epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def take(self, count: int) -> list[int]:
        out = []
        while len(out) < count:
            if self.cursor == self.size:
                self.epoch, self.cursor = self.epoch + 1, 0
                self._perm = self._permutation(self.epoch)
            out.append(int(self._perm[self.cursor]))
            self.cursor += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}


# --- from the synthetic QA manifest -------------------------------------------------------------


def qa_text(turns: list[tuple[str, str]]) -> str:
    """One media item's text: its question–answer turns in the pipeline's prompt format."""
    *history, (question, answer) = turns
    return f"{question_prompt(question, history)} {answer}{END_OF_CHUNK_TOKEN}"


def write_qa_samples(
    manifest: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    clips_per_sample: int = 1,
    dense: bool = False,
    max_turns: int | None = None,
) -> Path:
    """Turn a QA manifest (heron.data.synthetic format) into interleaved training samples.

    Each clip's questions become one media item followed by its turns, in a random order (seeded),
    exactly as the pipeline's prompts look after earlier turns of a session:
    ``<image>Question: q1 Answer: a1<|endofchunk|>Question: q2 Answer: a2<|endofchunk|>``.
    ``dense``: instead of the manifest's questions, every question the clip supports
    (``make_dense_questions`` on the scene in clips.jsonl): more supervision per decoded clip.
    ``max_turns``: a clip with more questions is split over several samples of at most that many.
    ``clips_per_sample`` > 1 packs several clips into one few-shot sequence. Returns ``out``.
    """
    from heron.data.synthetic import ClipMetadata, make_dense_questions

    manifest, out = Path(manifest), Path(out)
    by_clip: dict[tuple, list[dict]] = defaultdict(list)
    for line in manifest.read_text().splitlines():
        item = json.loads(line)
        by_clip[(item["video"], item["start"], item["end"])].append(item)
    scenes = {}
    if dense:
        for line in (manifest.parent / "clips.jsonl").read_text().splitlines():
            record = json.loads(line)
            scenes[record["video"]] = (record["seed"], ClipMetadata.from_dict(record))
    rng = np.random.default_rng(seed)
    relative = os.path.relpath(manifest.parent, out.parent)
    chunks = []
    for (video, start, end), items in by_clip.items():
        if dense:
            clip_seed, meta = scenes[video]
            questions = make_dense_questions(meta, np.random.default_rng([seed, clip_seed]))
            turns = [(q["question"], q["answer"]) for q in questions]
        else:
            turns = [(item["question"], item["answer"]) for item in items]
        turns = [turns[k] for k in rng.permutation(len(turns))]
        parts = 1 if not max_turns else -(-len(turns) // max_turns)
        media = {"video": os.path.join(relative, video), "start": start, "end": end}
        clip_id = items[0]["id"].rsplit("-", 1)[0]
        for p in range(parts):
            chunks.append((clip_id if parts == 1 else f"{clip_id}.{p}", media, qa_text(turns[p::parts])))
    groups = [chunks[i : i + clips_per_sample] for i in range(0, len(chunks), clips_per_sample)]
    return _write_jsonl(
        out,
        (
            {"id": "+".join(c[0] for c in group), "media": [c[1] for c in group], "text": "".join(c[2] for c in group)}
            for group in groups
        ),
    )


def write_caption_samples(manifest: str | Path, out: str | Path) -> Path:
    """One captioning sample per clip of a synthetic split: ``<image>{caption}<|endofchunk|>``, scored
    on every text token (``"labels": "text"``) — the alignment data of LLaVA's stage 1.

    The caption (``heron.data.synthetic.make_caption``) names every object's colour, shape and motion
    in the order the objects appear, so each clip supervises all of them at once. Returns ``out``.
    """
    from heron.data.synthetic import ClipMetadata, make_caption

    manifest, out = Path(manifest), Path(out)
    relative = os.path.relpath(manifest.parent, out.parent)
    records = []
    for line in (manifest.parent / "clips.jsonl").read_text().splitlines():
        clip = json.loads(line)
        media = {"video": os.path.join(relative, clip["video"]), "start": clip["start"], "end": clip["end"]}
        text = f"{IMAGE_TOKEN}{make_caption(ClipMetadata.from_dict(clip))}{END_OF_CHUNK_TOKEN}"
        records.append(
            {"id": f"{clip['split']}-{clip['clip']:06d}-caption", "media": [media], "text": text, "labels": "text"}
        )
    return _write_jsonl(out, records)


def _write_jsonl(out: Path, records) -> Path:
    """Write one JSON record per line, atomically: a temporary file of this process, then a rename
    (so two runs writing the same file never read or clobber each other's half-written copy)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    os.replace(tmp, out)
    return out
