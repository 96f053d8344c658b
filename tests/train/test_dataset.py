"""Interleaved JSONL samples: parsing, media decoding like the pipeline, few-shot batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import heron
from heron.config import DecodeConfig
from heron.errors import ConfigError, MediaCountMismatchError
from heron.pipeline.decode import VideoDecoder
from heron.pipeline.prompts import question_prompt
from heron.train.dataset import (
    InterleavedDataset,
    MediaLoader,
    SampleOrder,
    qa_text,
    read_samples,
    write_caption_samples,
    write_qa_samples,
)
from heron.train.loss import IGNORE_INDEX
from heron.train.media import MediaEncoder

from .conftest import DECODE, tiny_model_config


def test_qa_samples_use_the_pipeline_prompt_format(tiny_data):
    samples = read_samples(tiny_data["train"])
    manifest = [json.loads(line) for line in tiny_data["train_manifest"].read_text().splitlines()]
    assert len(samples) == 6 and all(len(s.media) == 1 for s in samples)
    first = samples[0]
    turns = [(m["question"], m["answer"]) for m in manifest if m["video"] == "videos/000000.mp4"]
    assert first.text.startswith("<image>Question: ") and first.text.count("Question:") == len(turns) >= 4
    assert all(f"Question: {q} Answer: {a}<|endofchunk|>" in first.text for q, a in turns)
    # The text before the last answer is exactly what the pipeline prompts with after those turns.
    assert qa_text([("What?", "red")]) == question_prompt("What?") + " red<|endofchunk|>"
    assert first.media[0].video.endswith("videos/000000.mp4") and first.media[0].end == pytest.approx(1.0)


def test_media_are_decoded_like_the_pipeline_decodes_them(tiny_data, tmp_path):
    ref = read_samples(tiny_data["train"])[0].media[0]
    decode = DecodeConfig(**DECODE)
    windows = MediaLoader(decode, tmp_path / "cache").windows(ref)
    again = MediaLoader(decode, tmp_path / "cache").windows(ref)  # from the .npy cache
    pipeline = [b.frames for b in VideoDecoder(ref.video, decode, start=ref.start, end=ref.end)]
    assert len(windows) == len(pipeline) == 1 and windows[0].shape == (8, 32, 32, 3)
    assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(windows, pipeline, again))
    halves = MediaLoader(DecodeConfig(**{**DECODE, "window_frames": 3})).windows(ref)
    assert [len(w) for w in halves] == [3, 3, 2]


def test_few_shot_and_image_samples_batch_into_padded_media(tiny_data, tmp_path):
    pixels = np.broadcast_to(np.array([220, 40, 40], dtype=np.uint8), (40, 48, 3))
    (tmp_path / "red.ppm").write_bytes(b"P6\n48 40\n255\n" + pixels.tobytes())
    video = tiny_data["train"].parent / "train" / "videos" / "000001.mp4"
    lines = [
        {
            "id": "few-shot",
            "media": [{"video": str(video), "start": 0.0, "end": 1.0}, {"image": "red.ppm"}],
            "text": "<image>Question: a? Answer: b<|endofchunk|><image>Question: c? Answer: d<|endofchunk|>",
        },
        {
            "id": "one",
            "media": [{"video": str(video), "start": 0.5}],
            "text": "<image>Question: e? Answer: f<|endofchunk|>",
        },
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    model = heron.load_model(tiny_model_config())
    dataset = InterleavedDataset(path, model.tokenizer, MediaLoader(DecodeConfig(**{**DECODE, "window_frames": 2})))
    batch = dataset.batch([0, 1])
    assert batch.input_ids.shape == batch.labels.shape == batch.attention_mask.shape
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()  # right padding
    media, mask = MediaEncoder(model, dataset.loader)(batch.media)
    r = model.encoder.num_latents
    # few-shot row: a 1 s video = 8 frames = 4 windows of 2 -> 4R tokens, and an image (1 window);
    # second row: 0.5 s = 4 frames = 2 windows.
    assert media.shape[:3] == (2, 2, 4 * r)
    assert mask[0, 0].sum() == 4 * r and mask[0, 1].sum() == r and mask[1, 0].sum() == 2 * r and not mask[1, 1].any()
    out = model(batch.input_ids, batch.attention_mask, media, labels=batch.labels, media_mask=mask)
    assert torch.isfinite(out.logits).all()
    red = dataset.loader.windows(dataset.samples[0].media[1])[0]
    assert red.shape == (1, 32, 38, 3) and np.abs(red.astype(int) - [220, 40, 40]).max() <= 1


@pytest.mark.parametrize(
    "line, error",
    [
        ({"text": "<image><image>", "media": [{"video": "a.mp4"}]}, MediaCountMismatchError),
        ({"text": "no media", "media": [{"video": "a.mp4", "image": "b.png"}]}, ConfigError),
        ({"media": []}, ConfigError),
        ({"text": "<image>", "media": [{"video": "a.mp4", "fps": 3}]}, ConfigError),
        ({"text": "a caption", "labels": "everything"}, ConfigError),
    ],
)
def test_bad_samples_are_typed_errors(tmp_path, line, error):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(error):
        read_samples(path)


def test_sample_order_is_a_permutation_per_epoch_and_resumable():
    order = SampleOrder(5, seed=3)
    seen = order.take(7)
    assert sorted(seen[:5]) == list(range(5)) and order.state() == {"epoch": 1, "cursor": 2}
    rest = order.take(6)
    again = SampleOrder(5, seed=3, epoch=1, cursor=2)
    assert again.take(6) == rest
    assert SampleOrder(5, seed=4).take(5) != seen[:5] or SampleOrder(5, seed=5).take(5) != seen[:5]


def test_write_qa_samples_packs_clips_for_few_shot(tiny_data, tmp_path):
    out = write_qa_samples(tiny_data["train_manifest"], tmp_path / "sub" / "pairs.jsonl", clips_per_sample=2)
    samples = read_samples(out)
    assert len(samples) == 3 and all(len(s.media) == 2 for s in samples)
    assert all(
        ref.video and (tiny_data["train_manifest"].parent / "videos").exists() for s in samples for ref in s.media
    )


def test_dense_samples_ask_everything_in_bounded_dialogues(tiny_data, tmp_path):
    out = write_qa_samples(tiny_data["train_manifest"], tmp_path / "dense.jsonl", dense=True, max_turns=4)
    samples = read_samples(out)
    assert all(s.text.count("Question:") <= 4 for s in samples)
    per_clip = {}
    for s in samples:
        per_clip.setdefault(s.media[0].video, []).append(s.text)
    assert len(per_clip) == 6 and len(samples) > 6  # clips with more than 4 questions are split
    clips = [json.loads(line) for line in (tiny_data["train_manifest"].parent / "clips.jsonl").open()]
    for clip in clips:
        text = "".join(per_clip[str(tiny_data["train_manifest"].parent / clip["video"])])
        for obj in clip["objects"]:  # every object's colour, shape and motion is asked
            assert f"What color is the {obj['shape']}? Answer: {obj['color']}<|endofchunk|>" in text
            assert f"Which direction does the {obj['color']} {obj['shape']} move? Answer: {obj['direction']}" in text


def test_caption_samples_describe_each_clip_and_mix_with_qa_under_their_own_labels(tiny_data, tmp_path):
    captions = write_caption_samples(tiny_data["train_manifest"], tmp_path / "captions.jsonl")
    samples = read_samples(captions)
    clips = [json.loads(line) for line in (tiny_data["train_manifest"].parent / "clips.jsonl").open()]
    assert len(samples) == len(clips) and all(s.labels == "text" for s in samples)
    for sample, clip in zip(samples, clips):
        assert sample.media[0].video == str(tiny_data["train_manifest"].parent / clip["video"])
        assert sample.text == f"<image>{clip['caption']}<|endofchunk|>"
    model = heron.load_model(tiny_model_config())
    mixed = InterleavedDataset([tiny_data["train"], captions], model.tokenizer, MediaLoader(DecodeConfig(**DECODE)))
    qa_count = len(read_samples(tiny_data["train"]))
    assert len(mixed) == qa_count + len(clips)
    image = model.tokenizer.convert_tokens_to_ids("<image>")
    for i in (0, qa_count):  # a QA sample scores its answers only, a caption sample all its text
        ids, labels = mixed.tokens[i]
        scored = [t for t, label in zip(ids, labels) if label != IGNORE_INDEX]
        text = mixed.samples[i].text
        if i == 0:
            assert len(scored) < len(ids) - 2 and "Answer:" in text
        else:
            assert scored == [t for t in ids if t != image] and labels[0] == IGNORE_INDEX
