"""The stream actor: one per live stream, running its StreamRunner on a thread of its own.

Restartable: everything it needs to continue lives in Redis (the stream record, its watches and
their event state, the windows under the stream id), so when Ray restarts it after a crash the
constructor picks up where the last one stopped — no window stored twice, no alert sent twice.
Encoding goes to the encode pool and scoring to the answer actor, which batches the watches of
every stream due at once.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from typing import Any

import ray

from heron.actors.calls import get
from heron.config import PipelineConfig
from heron.pipeline.live import LiveSpec
from heron.state import AlertStore, LatentStore, StreamStore


@dataclass(frozen=True)
class StreamPeers:
    """The named actors a stream actor calls. Names, not handles: Ray counts an actor handle among
    a restartable actor's arguments as an object a restart may lose, and warns so on every start
    (ray-project/ray#53727); a name is looked up again by each (re)started constructor."""

    encoders: tuple[str, ...]  # encode actors, used in turn
    answerer: str  # the answer actor (scores watches, answers their questions)

    def handles(self) -> tuple[list, Any]:
        return [ray.get_actor(name) for name in self.encoders], ray.get_actor(self.answerer)


class StreamActor:
    def __init__(
        self,
        cfg: PipelineConfig,
        stream_id: str,
        spec: LiveSpec,
        latents: LatentStore,
        streams: StreamStore,
        alerts: AlertStore,
        peers: StreamPeers,
    ):
        from heron.pipeline.stream import StreamRunner

        encoders, answerer = peers.handles()
        turn = itertools.cycle(range(len(encoders)))
        self.runner = StreamRunner(
            stream_id,
            spec,
            cfg,
            latents=latents,
            streams=streams,
            alerts=alerts,
            encode=lambda batches: get(encoders[next(turn)].encode.remote(batches)),
            score=lambda requests: get(answerer.score.remote(requests)),
            answer=lambda request: get(answerer.answer.remote(request)),
        )
        self.thread = threading.Thread(target=self.runner.run, name=f"heron-stream-{stream_id}", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        """Whether the stream is still being read (False once stopped, or a file has ended)."""
        return self.thread.is_alive()

    def pid(self) -> int:
        """This actor's OS process id (fault tests kill it; soak tests watch its memory and files)."""
        return os.getpid()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop reading; True once the runner has finished."""
        self.runner.stop.set()
        self.thread.join(timeout=timeout_s)
        return not self.thread.is_alive()
