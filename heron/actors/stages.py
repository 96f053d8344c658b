"""Ray actors: thin wrappers over the plain pipeline stages, with resources and restart policy.

Each actor builds its stage in ``__init__`` (loading the model once) and does the work in plain
method calls. Nothing an actor holds is needed after a crash: latents and dialogue are in Redis,
so Ray may restart it (``max_restarts``) and retry the call in flight (``max_task_retries``).
Decode actors are kept across ingests (a process start costs 0.5–2 s); every call names the run
it is for, so a restarted decode actor reopens that run from its start, as a fresh one would.
Windows are keyed by index, so re-encoding a window overwrites it with the same value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import ray

from heron.errors import ClusterResourcesError
from heron.pipeline.config import ActorResources, AnswerConfig, PipelineConfig
from heron.pipeline.decode import DecodeConfig
from heron.pipeline.decode_stage import DecodeStage
from heron.pipeline.store import RedisStateStore
from heron.pipeline.types import FrameBatch, MediaChunk

if TYPE_CHECKING:
    from heron.pipeline.answer import Answer


def actor_options(resources: ActorResources) -> dict:
    return dict(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, max_restarts=resources.max_restarts,
                max_task_retries=resources.max_task_retries, max_concurrency=resources.max_concurrency)


@dataclass(frozen=True)
class DecodeRun:
    """One decode actor's share of an ingest: a source and a run of whole windows [start, end)."""

    source: str
    source_id: str
    start: float | None
    end: float | None


class DecodeActor:
    """Decodes one run at a time; a pooled actor serves the runs of many ingests in turn."""

    def __init__(self, cfg: DecodeConfig):
        self.cfg = cfg
        self.run: DecodeRun | None = None
        self.stage: DecodeStage | None = None

    def _stage(self, run: DecodeRun) -> DecodeStage:
        if run != self.run:  # a new run, or Ray restarted this actor in the middle of one
            self.stage, self.run = None, None  # the last run's file is closed before the next opens
            self.stage = DecodeStage(run.source, self.cfg, start=run.start, end=run.end, source_id=run.source_id)
            self.run = run
        return self.stage

    def next(self, run: DecodeRun, n: int) -> list[FrameBatch]:
        return self._stage(run).next(n)

    def finish(self, run: DecodeRun) -> dict | None:
        """The run's decode stats (None if it never opened here); its file is closed."""
        stats = self.stage.stats() if run == self.run else None
        self.stage, self.run = None, None
        return stats


class EncodeActor:
    def __init__(self, cfg: PipelineConfig):
        # Imported here, not at the top: torch + transformers take ~4 s to import, and the
        # decode actor (a fresh process per ingest) needs neither.
        from heron.models import load_encoder
        from heron.pipeline.encode import EncodeStage

        self.stage = EncodeStage(load_encoder(cfg.model, device=cfg.device))  # no LM in encode workers

    def encode(self, batches: list[FrameBatch]) -> list[MediaChunk]:
        return self.stage(batches)

    def counters(self) -> dict[str, int]:
        return self.stage.counters()


class AnswerActor:
    def __init__(self, cfg: PipelineConfig, store: RedisStateStore):
        from heron.models import load_model
        from heron.pipeline.answer import AnswerStage

        self.stage = AnswerStage(load_model(cfg.model, device=cfg.device, trainable="none"), store, cfg.answer)

    def answer(self, question: str, source_id: str, start: float, end: float, session_id: str | None) -> Answer:
        return self.stage(question, source_id, start=start, end=end, session_id=session_id)


def remote(cls: type, resources: ActorResources):
    """``cls`` as a Ray actor class with ``resources`` applied (check_cluster_has first)."""
    return ray.remote(**actor_options(resources))(cls)


def check_cluster_has(demands: list[tuple[str, ActorResources, int]]) -> None:
    """Fail now if the cluster could never hold these actors at once: ``(setting, resources,
    count)`` each. Ray would queue the ones that do not fit forever, without a word (a GPU preset
    on a CPU machine; three 1-CPU actors on two cores). The cluster's current total is the limit,
    so an autoscaling cluster must already have nodes for what the pipeline needs."""
    total = ray.cluster_resources()
    for name in ("CPU", "GPU"):
        key = f"num_{name.lower()}s"
        wanted = sum(getattr(resources, key) * count for _, resources, count in demands)
        have = total.get(name, 0.0)
        if wanted > have + 1e-9:
            parts = ", ".join(f"{count} x {setting} ({getattr(resources, key):g} each)"
                              for setting, resources, count in demands if count and getattr(resources, key))
            hint = " (0 runs on the CPU)" if name == "GPU" else ""
            raise ClusterResourcesError(
                f"the pipeline's actors need {wanted:g} {name} at once ({parts}), but this Ray cluster has "
                f"{have:g} {name} in all; lower {key} in the pipeline config{hint} (or ingest.decode_actors), "
                "or add nodes that have it")
