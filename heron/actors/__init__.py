"""Ray actors over the pipeline stages (decode on CPU, encode on GPU when present, answer)."""

from heron.actors.stages import (AnswerActor, DecodeActor, DecodeRun, EncodeActor, actor_options, check_cluster_has,
                                 remote)

__all__ = ["AnswerActor", "DecodeActor", "DecodeRun", "EncodeActor", "actor_options", "check_cluster_has", "remote"]
