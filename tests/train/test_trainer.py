"""The two-stage trainer on the tiny preset: it learns, touches only what it may, and resumes exactly."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import heron
from heron.errors import CheckpointMismatchError, StageMismatchError
from heron.train.checkpoint import latest_checkpoint, load_checkpoint
from heron.train.config import StageConfig
from heron.train.dataset import write_caption_samples
from heron.train.media import MediaEncoder
from heron.train.schedule import warmup_cosine
from heron.train.trainer import Trainer, make_optimizer

from .conftest import tiny_model_config, tiny_run

# Full batch (6 samples) and a constant learning rate: every step descends the same objective.
STAGE1 = StageConfig(
    name="s1",
    trainable="connector",
    steps=20,
    batch_size=6,
    lr=3e-2,
    warmup_steps=2,
    min_lr_ratio=1.0,
    weight_decay=0.0,
    eval_samples=0,
    eval_questions=0,
)
STAGE2 = StageConfig(
    name="s2",
    trainable="end_to_end",
    steps=10,
    batch_size=6,
    lr=1e-2,
    warmup_steps=1,
    min_lr_ratio=1.0,
    weight_decay=0.0,
    eval_samples=0,
    eval_questions=0,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # 2 threads on a busy 2-core machine are 10-30x slower for tiny ops


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _check_stage(stage_run, before: dict[str, torch.Tensor]) -> None:
    trainable = {n for n, p in stage_run.model.named_parameters() if p.requires_grad}
    after = dict(stage_run.model.named_parameters())
    # weight_decay is 0, so a change means a gradient reached the tensor.
    unchanged = sorted(n for n in trainable if torch.equal(after[n], before[n]))
    assert not unchanged, f"trainable tensors that did not change: {unchanged}"
    moved = sorted(n for n in set(after) - trainable if not torch.equal(after[n], before[n]))
    assert not moved, f"frozen tensors that changed: {moved}"
    losses = stage_run.state.losses
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.3, losses


def test_two_stages_lower_the_loss_and_train_only_what_they_may(tmp_path, tiny_data):
    run = tiny_run(tmp_path, tiny_data, STAGE1, STAGE2)
    trainer = Trainer(run)

    stage1 = trainer.stage(0, run.model)
    frozen_names = {n for n, p in stage1.model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("encoder.backbone.") for n in frozen_names)
    assert any(n.startswith("lm.") and "gated_cross_attn_layer" not in n for n in frozen_names)
    before = _snapshot(stage1.model)
    stage1_dir = stage1.run(resume=False)
    _check_stage(stage1, before)

    stage2 = trainer.stage(1, stage1_dir)  # loads the saved stage-1 model, LM unfrozen
    loaded = dict(stage2.model.named_parameters())
    assert all(torch.equal(loaded[n], p) for n, p in stage1.model.named_parameters())
    assert all(p.requires_grad for n, p in loaded.items() if n.startswith("lm.transformer.h.0.") and "c_attn" in n)
    before = _snapshot(stage2.model)
    final = stage2.run(resume=False)
    _check_stage(stage2, before)

    # The saved model is what was trained, loadable by the one loader.
    reloaded = heron.load_model(final, trainable="none")
    for name, param in stage2.model.named_parameters():
        torch.testing.assert_close(dict(reloaded.named_parameters())[name], param, rtol=0, atol=0)
    record = json.loads((final / "training.json").read_text())
    assert record["decode"]["window_frames"] == 8 and record["steps"] == 10


def test_resume_reproduces_the_uninterrupted_loss_sequence(tmp_path, tiny_data):
    stage = StageConfig(
        name="s1",
        trainable="connector",
        steps=8,
        batch_size=2,
        grad_accumulation=2,
        lr=1e-2,
        warmup_steps=2,
        eval_samples=4,
        eval_questions=0,
        checkpoint_every=3,
    )
    run_a = tiny_run(tmp_path / "a", tiny_data, stage)
    straight = Trainer(run_a).stage(0, run_a.model)
    straight.run(resume=False)

    run = tiny_run(tmp_path / "b", tiny_data, stage)
    first = Trainer(run).stage(0, run.model)
    assert first.run(resume=False, stop_after=5) is None  # interrupted after 5 of 8 steps
    assert latest_checkpoint(first.dir / "checkpoints").name == "step-000005"
    resumed = Trainer(run).stage(0, run.model)  # a fresh process would do the same
    resumed.run(resume=True)

    # 2 samples x 2 micro-batches per step over 6 samples: the resumed run crosses an epoch
    # boundary mid-step, so the data position is restored exactly, not just the epoch.
    assert len(resumed.state.losses) == len(straight.state.losses) == 8
    assert resumed.state.losses == straight.state.losses
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name


def test_cached_tower_features_change_no_number(tmp_path, tiny_data):
    run = tiny_run(tmp_path, tiny_data)
    stage = Trainer(run).stage(0, run.model)
    stage.model.eval()
    batch = stage.train_set.batch([0, 1, 2])
    losses = []
    cached: dict = {}
    for cache in (False, True, True):  # the second cached call reads features stored by the first
        stage.media = MediaEncoder(stage.model, stage.loader, cache_features=cache, features=cached)
        loss, count = stage.loss_sum(batch)
        losses.append(loss)
    assert len(cached) == 3  # the cache was filled (and then used)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(losses[2], losses[1], rtol=0, atol=0)


def test_checkpoint_refuses_a_different_model(tmp_path, tiny_data):
    run = tiny_run(tmp_path, tiny_data)
    stage = Trainer(run).stage(0, run.model)
    stage.run(resume=False)
    checkpoint = latest_checkpoint(stage.dir / "checkpoints")
    other = heron.load_model(run.model, trainable="end_to_end")  # more trainable tensors
    with pytest.raises(CheckpointMismatchError, match="missing"):
        load_checkpoint(checkpoint, other, make_optimizer(other, StageConfig()))


def test_warmup_then_cosine():
    factors = [warmup_cosine(s, total=100, warmup=10, min_ratio=0.1) for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[55] == pytest.approx(0.55)


def test_optimizer_groups_scale_rates_and_spare_embeddings_from_decay():
    model = heron.load_model(tiny_model_config())
    stage = StageConfig(lr=1e-3, weight_decay=0.1, lr_multipliers={"time_embeddings": 30.0})
    optimizer = make_optimizer(model, stage)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    time_group = group_of[id(named["encoder.time_embeddings.embeddings"])]
    assert time_group["lr"] == pytest.approx(3e-2) and time_group["weight_decay"] == 0.0
    assert group_of[id(named["encoder.resampler.latents"])]["weight_decay"] == 0.0
    matrix = next(n for n in named if n.endswith("to_q.weight") and "resampler" in n)
    assert group_of[id(named[matrix])]["weight_decay"] == 0.1 and group_of[id(named[matrix])]["lr"] == 1e-3
    gate = next(n for n in named if n.endswith("attn_gate"))
    assert group_of[id(named[gate])]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(p.requires_grad for p in named.values())


def test_a_stage_trains_on_its_own_files(tmp_path, tiny_data):
    captions = write_caption_samples(tiny_data["train_manifest"], tmp_path / "captions.jsonl")
    own = StageConfig(name="align", train=[str(captions)], steps=2, batch_size=3, eval_samples=0, eval_questions=0)
    run = tiny_run(tmp_path, tiny_data, own, STAGE2)
    trainer = Trainer(run)
    first = trainer.stage(0, run.model)
    assert first.train_set.paths == [captions] and {s.labels for s in first.train_set.samples} == {"text"}
    batch = first.train_set.batch([0, 1, 2])
    assert batch.label_count > 3 * 10  # whole captions are scored, not just a few answer words
    second = trainer.stage(1, run.model)
    assert second.train_set.paths == [tiny_data["train"]]  # no list: train.data.train


def test_a_stage_validates_on_its_own_file(tmp_path, tiny_data):
    """Stage 1 learns captions: its validation loss is measured on validation clips' captions."""
    val_captions = write_caption_samples(tiny_data["val_manifest"], tmp_path / "val_captions.jsonl")
    own = StageConfig(name="align", val=str(val_captions), steps=1, batch_size=3, eval_samples=2, eval_questions=0)
    run = tiny_run(tmp_path, tiny_data, own, dataclasses.replace(STAGE2, eval_samples=2))
    trainer = Trainer(run)
    first, second = trainer.stage(0, run.model), trainer.stage(1, run.model)
    assert first.val_set.paths == [val_captions] and {s.labels for s in first.val_set.samples} == {"text"}
    assert second.val_set.paths == [tiny_data["val"]]  # no val: train.data.val
    assert first.validate()["val_loss"] != second.validate()["val_loss"]


def test_a_finished_stage_is_reused_only_under_the_config_it_was_trained_with(tmp_path, tiny_data):
    quick = dataclasses.replace(STAGE1, steps=2)
    run = tiny_run(tmp_path, tiny_data, quick)
    done = Trainer(run).fit()
    weights = (done / "model.safetensors").read_bytes()
    assert Trainer(run).fit() == done and (done / "model.safetensors").read_bytes() == weights  # reused as is
    record = json.loads((done / "training.json").read_text())
    del record["stages"][0]["keep_checkpoints"]  # as an older Heron, without that field, wrote it
    (done / "training.json").write_text(json.dumps(record))
    assert Trainer(run).fit() == done  # a missing field is its default, not a change

    longer = tiny_run(tmp_path, tiny_data, dataclasses.replace(quick, steps=3))
    with pytest.raises(StageMismatchError, match=r"stages\[0\] \(s1\) differ"):
        Trainer(longer).fit()
    other_connector = tiny_run(tmp_path, tiny_data, quick)
    other_connector.model.resampler = dataclasses.replace(other_connector.model.resampler, num_latents=6)
    with pytest.raises(StageMismatchError, match=r"model\.resampler differ"):
        Trainer(other_connector).fit()
    assert (done / "model.safetensors").read_bytes() == weights  # nothing done was lost
