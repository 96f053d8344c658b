"""What each actor asks Ray for, and a check that the cluster can ever hold the actors asked for."""

from __future__ import annotations

import ray

from heron.config import ActorResources
from heron.errors import ClusterResourcesError


def actor_options(resources: ActorResources) -> dict:
    """``.options(...)`` of an actor class for ``resources`` (the classes are decorated once)."""
    return dict(
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        max_restarts=resources.max_restarts,
        max_task_retries=resources.max_task_retries,
        max_concurrency=resources.max_concurrency,
    )


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
            parts = ", ".join(
                f"{count} x {setting} ({getattr(resources, key):g} each)"
                for setting, resources, count in demands
                if count and getattr(resources, key)
            )
            hint = " (0 runs on the CPU)" if name == "GPU" else ""
            raise ClusterResourcesError(
                f"the pipeline's actors need {wanted:g} {name} at once ({parts}), but this Ray cluster has "
                f"{have:g} {name} in all; lower {key} in the pipeline config{hint} (or ingest.decode_actors), "
                "or add nodes that have it"
            )
