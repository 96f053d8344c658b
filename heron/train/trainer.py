"""The two-stage recipe: each stage loads a model with the loader's freezing policy, trains it with
the Flamingo loss, and saves it with ``heron.save_pretrained`` for the next stage.

    stage "connector"   heron.load_model(config, trainable="connector"): time embeddings,
                        resampler and gated cross-attention (or the linear connector) train;
                        vision tower and LM frozen (Flamingo; LLaVA stage 1)
    stage "end_to_end"  heron.load_model(previous stage, trainable="end_to_end"): the LM
                        trains too (LLaVA stage 2); the vision tower stays frozen

AdamW on the trainable parameters (weight decay on matrices only), linear warm-up + cosine,
gradient accumulation with the loss averaged over all scored tokens of the accumulated batch,
bf16 autocast on CUDA, periodic validation (loss and generation accuracy), resumable safetensors
checkpoints (weights, optimizer, data position, RNG). The forward pass is the model's own.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from heron.config import CrossAttentionConfig, ModelConfig, ResamplerConfig
from heron.config.model_source import find_path
from heron.errors import ConfigError, StageMismatchError
from heron.models.building import CONFIG_FILE, resolve_device
from heron.models.heron_model import HeronModel
from heron.models.loading import load_model, save_pretrained
from heron.train.checkpoint import TrainingState, latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from heron.train.config import RunConfig, StageConfig, check_backbones
from heron.train.dataset import Batch, InterleavedDataset, MediaLoader, SampleOrder
from heron.train.evaluate import TRAINING_FILE, answer_questions, read_questions, summarize
from heron.train.loss import flamingo_loss
from heron.train.media import MediaEncoder
from heron.train.schedule import warmup_cosine

log = logging.getLogger(__name__)


def make_optimizer(model: torch.nn.Module, stage: StageConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, one group per (lr multiplier, decay) pair.

    Matrices decay, vectors (biases, norms, gates) and ``stage.no_weight_decay`` names do not;
    ``stage.lr_multipliers`` scales the rate of matching names (group key ``lr_mult``).
    """
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        mult = next((m for pattern, m in stage.lr_multipliers.items() if pattern in name), 1.0)
        decay = param.ndim >= 2 and not any(pattern in name for pattern in stage.no_weight_decay)
        groups.setdefault((mult, decay), []).append(param)
    param_groups = [
        {"params": params, "lr": stage.lr * mult, "lr_mult": mult, "weight_decay": stage.weight_decay if decay else 0.0}
        for (mult, decay), params in sorted(groups.items())
    ]
    return torch.optim.AdamW(param_groups, lr=stage.lr, betas=tuple(stage.betas), foreach=False)


class StageRun:
    """One stage: model, data, optimizer and the step loop. ``run()`` returns the saved model dir."""

    def __init__(self, trainer: Trainer, index: int, init: ModelConfig | Path):
        self.trainer, self.index, self.init = trainer, index, init
        self.stage: StageConfig = trainer.cfg.stages[index]
        self.dir = Path(trainer.cfg.output_dir) / self.stage.name
        self.model: HeronModel = load_model(
            init, device=str(trainer.device), dtype="float32", trainable=self.stage.trainable
        )
        data = trainer.cfg.data
        self.loader = MediaLoader(data.decode_config(), data.frame_cache)
        self.train_set = InterleavedDataset(
            self.stage.train or [data.train],
            self.model.tokenizer,
            self.loader,
            labels=data.labels,
            max_length=self.model.max_context,
        )
        val = self.stage.val or data.val
        self.val_set = InterleavedDataset(val, self.model.tokenizer, self.loader, labels=data.labels) if val else None
        self.media = trainer.media_encoder(self.model, self.loader)
        self.optimizer = make_optimizer(self.model, self.stage)
        self.order = SampleOrder(len(self.train_set), trainer.cfg.seed + 1000 * index)
        self.state = TrainingState(step=0, order=self.order.state(), losses=[], extra={"evals": []})

    # --- one step ---------------------------------------------------------------------------

    def _autocast(self):
        if self.trainer.device.type == "cuda" and self.trainer.cfg.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def loss_sum(self, batch: Batch) -> tuple[torch.Tensor, int]:
        """Summed Flamingo loss of a batch and its scored-token count (the model's forward)."""
        with self._autocast():
            media, media_mask = self.media(batch.media)
            device = self.model.device
            out = self.model(
                batch.input_ids.to(device),
                batch.attention_mask.to(device),
                media,
                labels=batch.labels.to(device),
                media_mask=media_mask,
            )
            return flamingo_loss(out.logits, out.labels)

    def step(self) -> float:
        """One optimizer step over ``grad_accumulation`` micro-batches; returns the mean loss."""
        stage = self.stage
        batches = [self.train_set.batch(self.order.take(stage.batch_size)) for _ in range(stage.grad_accumulation)]
        tokens = max(1, sum(b.label_count for b in batches))
        scale = warmup_cosine(
            self.state.step, total=stage.steps, warmup=stage.warmup_steps, min_ratio=stage.min_lr_ratio
        )
        for group in self.optimizer.param_groups:
            group["lr"] = stage.lr * group.get("lr_mult", 1.0) * scale
        total = 0.0
        for batch in batches:
            loss, _ = self.loss_sum(batch)
            (loss / tokens).backward()
            total += float(loss.detach())
        if stage.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self._params(), stage.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        return total / tokens

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    # --- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict:
        """Validation loss on the first ``eval_samples`` samples and accuracy on ``eval_questions``."""
        self.model.eval()
        result: dict = {"step": self.state.step}
        try:
            if self.val_set is not None and self.stage.eval_samples > 0:
                total, count = 0.0, 0
                indices = list(range(min(len(self.val_set), self.stage.eval_samples)))
                for start in range(0, len(indices), self.stage.batch_size):
                    loss, n = self.loss_sum(self.val_set.batch(indices[start : start + self.stage.batch_size]))
                    total, count = total + float(loss), count + n
                result["val_loss"] = round(total / max(count, 1), 5)
            questions_file = self.trainer.cfg.data.val_questions
            if questions_file and self.stage.eval_questions > 0:
                questions = self.trainer.val_questions(questions_file, self.stage.eval_questions)
                rows = answer_questions(self.model, questions, self.loader, score_choices=False)
                summary = summarize(rows)
                result["val_accuracy"] = summary["overall"]["accuracy"]
                result["val_categories"] = {k: v["accuracy"] for k, v in summary["categories"].items()}
        finally:
            self._train_mode()
        return result

    def _train_mode(self) -> None:
        self.model.train()
        self.model.encoder.backbone.eval()  # frozen tower: keep it deterministic (its features are cached)

    # --- the loop ----------------------------------------------------------------------------------

    def resume(self) -> bool:
        found = latest_checkpoint(self.dir / "checkpoints")
        if found is None:
            return False
        self.state = load_checkpoint(found, self.model, self.optimizer)
        self.order = SampleOrder(len(self.train_set), self.order.seed, **self.state.order)
        log.info("resumed %s from %s (step %d)", self.stage.name, found, self.state.step)
        return True

    def checkpoint(self) -> Path:
        self.state.order = self.order.state()
        path = save_checkpoint(
            self.dir / "checkpoints" / f"step-{self.state.step:06d}", self.model, self.optimizer, self.state
        )
        prune_checkpoints(self.dir / "checkpoints", self.stage.keep_checkpoints)
        return path

    def run(self, *, resume: bool = True, stop_after: int | None = None) -> Path | None:
        """Train to ``stage.steps`` (or stop early after ``stop_after`` steps, leaving a checkpoint,
        and return None); save the model; return its directory."""
        stage, cfg = self.stage, self.trainer.cfg
        if not resume:  # afresh: old checkpoints and metrics of this stage would only mislead
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
        self._train_mode()
        self.media.warm_up(
            [(self.train_set.media_key(ref), ref) for sample in self.train_set.samples for ref in sample.media],
            progress=cfg.progress,
        )
        bar = tqdm(
            total=stage.steps,
            initial=self.state.step,
            desc=stage.name,
            disable=not cfg.progress,
            unit="step",
            dynamic_ncols=True,
        )
        clock, recent = time.perf_counter(), []
        while self.state.step < stage.steps:
            loss = self.step()
            self.state.losses.append(loss)
            recent.append(loss)
            bar.update(1)
            lr = stage.lr * warmup_cosine(
                self.state.step - 1, total=stage.steps, warmup=stage.warmup_steps, min_ratio=stage.min_lr_ratio
            )
            bar.set_postfix(loss=f"{sum(recent[-20:]) / len(recent[-20:]):.4f}", lr=f"{lr:.2e}")
            step = self.state.step
            if stage.eval_every and step % stage.eval_every == 0 and step < stage.steps:
                self._record(self.validate(), recent, bar)
                recent = []
            if stage.checkpoint_every and step % stage.checkpoint_every == 0 and step < stage.steps:
                self.checkpoint()
            if stop_after is not None and step >= stop_after and step < stage.steps:
                bar.close()
                self.checkpoint()
                return None
        bar.close()
        self._record(self.validate(), recent, bar)
        self.state.extra["seconds"] = self.state.extra.get("seconds", 0.0) + time.perf_counter() - clock
        self.checkpoint()
        return self.save()

    def _record(self, result: dict, recent: list[float], bar) -> None:
        if recent:
            result["train_loss"] = round(sum(recent) / len(recent), 5)
        self.state.extra.setdefault("evals", []).append(result)
        shown = {k: v for k, v in result.items() if k != "val_categories"}
        bar.write(f"[{self.stage.name}] " + " ".join(f"{k}={v}" for k, v in shown.items()))
        log.info("%s eval %s", self.stage.name, result)
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(result) + "\n")

    def save(self) -> Path:
        last = self.index == len(self.trainer.cfg.stages) - 1
        target = self.dir / "model"
        tmp = self.dir / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # A trained LM, or the final model, is saved whole so the folder stands on its own.
        save_pretrained(self.model, tmp, save_backbones=True if last or self.stage.trainable == "end_to_end" else None)
        record = {
            "stage": self.stage.name,
            "trainable": self.stage.trainable,
            "steps": self.state.step,
            "init": str(self.init) if isinstance(self.init, Path) else "config",
            "decode": asdict(self.trainer.cfg.data.decode_config()),
            "stages": [asdict(s) for s in self.trainer.cfg.stages[: self.index + 1]],
            "seconds": round(self.state.extra.get("seconds", 0.0), 1),
            "final_train_loss": round(sum(self.state.losses[-50:]) / max(1, len(self.state.losses[-50:])), 5),
            "evals": self.state.extra.get("evals", []),
            "config": self.trainer.run.source,
        }
        (tmp / TRAINING_FILE).write_text(json.dumps(record, indent=1, default=str))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        return target


class Trainer:
    """Runs the stages of ``run.train`` in order; a finished stage (its model/ exists, trained under
    this config) is skipped."""

    def __init__(self, run: RunConfig):
        self.run, self.cfg = run, run.train
        self.device = resolve_device(self.cfg.device)
        if self.cfg.threads > 0:
            torch.set_num_threads(self.cfg.threads)
        self._media_encoders: dict[int, MediaEncoder] = {}
        self._questions: dict[tuple[str, int], list] = {}
        self._features: dict = {}  # tower features, shared by the stages (the tower never changes)
        self.reused: list[str] = []  # stages the last fit() found finished and reused

    def media_encoder(self, model: HeronModel, loader: MediaLoader) -> MediaEncoder:
        return MediaEncoder(model, loader, cache_features=self.cfg.data.cache_features, features=self._features)

    def val_questions(self, path: str, limit: int) -> list:
        if (path, limit) not in self._questions:
            self._questions[path, limit] = read_questions(path, split="val", limit=limit)
        return self._questions[path, limit]

    def stage(self, index: int, init: ModelConfig | Path) -> StageRun:
        torch.manual_seed(self.cfg.seed + index)
        return StageRun(self, index, init)

    def fit(self, *, resume: bool = True) -> Path:
        """Train every stage in order (reusing finished ones when resuming); returns the final model dir."""
        check_backbones(self.run)
        init: ModelConfig | Path = find_path(self.cfg.init) if self.cfg.init else self.run.model
        self.reused = []
        for index, stage in enumerate(self.cfg.stages):
            done = Path(self.cfg.output_dir) / stage.name / "model"
            if resume and (done / TRAINING_FILE).exists():
                check_finished_stage(done, self.cfg.stages[: index + 1], self.run.model)
                log.info("stage %s already done: %s", stage.name, done)
                self.reused.append(stage.name)
                init = done
                continue
            init = self.stage(index, init).run(resume=resume)
        if self.cfg.save_to:
            target = Path(self.cfg.save_to)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(init, target)
            init = target
        return init


def check_finished_stage(done: Path, stages: list[StageConfig], model: ModelConfig) -> None:
    """Refuse to reuse a finished stage that was trained under another config.

    A stage's saved model is reused as is, so a changed stage (or an earlier one), or a changed
    connector (resampler, cross-attention), would otherwise keep the old weights without a word.
    """
    recorded = json.loads((done / TRAINING_FILE).read_text()).get("stages", [])
    saved = yaml.safe_load((done / CONFIG_FILE).read_text())
    changed = [
        f"stages[{i}] ({stage.name})"
        for i, (stage, old) in enumerate(zip(stages, recorded))
        if not _same(StageConfig, old, stage)
    ]
    if len(recorded) != len(stages):
        changed.append("the number of stages before it")
    changed += [
        f"model.{key}"
        for key, cls, current in (
            ("resampler", ResamplerConfig, model.resampler),
            ("xattn", CrossAttentionConfig, model.xattn),
        )
        if not _same(cls, saved.get(key, {}), current)
    ]
    if saved.get("connector") != model.connector:
        changed.append("model.connector")
    if changed:
        raise StageMismatchError(
            f"{done} was trained under another config ({', '.join(changed)} differ); delete "
            f"{done.parent} to train that stage again, or rerun with --no-resume (heron train) / --force "
            f"(demo-model) to redo everything"
        )


def _same(cls: type, saved: dict, current: object) -> bool:
    """Whether a config saved as a dict (perhaps by an older Heron: fields it lacks take their
    defaults) equals ``current``, compared as JSON the way records store them."""
    try:
        old = cls(**saved)
    except (TypeError, ConfigError):  # a field this Heron does not know, or a value it refuses
        return False
    as_json = lambda config: json.loads(json.dumps(asdict(config), default=str))  # noqa: E731
    return as_json(old) == as_json(current)
