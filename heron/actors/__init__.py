"""Ray actors: thin wrappers over the plain pipeline stages, with resources and restart policy.

Each actor is a plain class (testable without Ray) that builds its stage in ``__init__`` and works
in plain method calls. Nothing an actor holds is needed after a crash: latents and dialogue are
in Redis, so Ray may restart it (``max_restarts``) and retry the call in flight
(``max_task_retries``). The classes are decorated once, here; each pool sets its resources with
``.options(**actor_options(resources))``.
"""

import ray

from heron.actors.answer import AnswerActor
from heron.actors.decode import DecodeActor, DecodeRun
from heron.actors.encode import EncodeActor
from heron.actors.resources import actor_options, check_cluster_has
from heron.actors.stream import StreamActor, StreamPeers

RemoteDecodeActor = ray.remote(DecodeActor)
RemoteEncodeActor = ray.remote(EncodeActor)
RemoteAnswerActor = ray.remote(AnswerActor)
RemoteStreamActor = ray.remote(StreamActor)

__all__ = [
    "AnswerActor",
    "DecodeActor",
    "DecodeRun",
    "EncodeActor",
    "RemoteAnswerActor",
    "RemoteDecodeActor",
    "RemoteEncodeActor",
    "RemoteStreamActor",
    "StreamActor",
    "StreamPeers",
    "actor_options",
    "check_cluster_has",
]
