"""Live streams and their watches, run by one Heron: start, stop, list, watch, ask about the last minutes.

    streams = heron.streams
    stream_id = streams.start("rtsp://camera/live", watches=[Watch("door", "Is a person at the door?")])
    streams.status(stream_id)        # lag, frames/s, windows, reconnects, gaps
    heron.alerts.wait({stream_id: "$"}, timeout_s=10)

Each stream runs in a stream actor of its own (named ``heron-stream-<id>``, restarted by Ray when
it crashes), fed to the Heron's encode pool and answer actor. A stream's id is given, or derived
from its URL, so asking the same URL twice finds the same stream.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import ray

from heron.actors import RemoteStreamActor, actor_options
from heron.actors.calls import get
from heron.errors import ConfigError, EmptyVideoError, StreamNotFoundError
from heron.pipeline.answer import AnswerRequest, MediaRef
from heron.pipeline.live import LiveSpec, live_spec
from heron.pipeline.watch import Example, Watch
from heron.state import AlertStore, StreamStore

log = logging.getLogger(__name__)


def stream_id_for(uri: str) -> str:
    return "live-" + hashlib.blake2b(uri.encode(), digest_size=6).hexdigest()


class LiveStreams:
    def __init__(self, heron):
        self.heron = heron
        self.store = StreamStore(heron.db)
        self.alerts = AlertStore(heron.db, maxlen=heron.cfg.live.alerts_kept)
        self._actors: dict[str, object] = {}

    # --- streams ----------------------------------------------------------------------------------

    def start(
        self, source: str | LiveSpec, *, stream_id: str | None = None, realtime: bool = False, watches: list[Watch] = ()
    ) -> str:
        """Start reading ``source`` (or keep reading it); returns the stream id. A ``LiveSpec`` of a
        file that is not ``realtime`` is read as fast as it decodes (benchmarks, backfills)."""
        spec = source if isinstance(source, LiveSpec) else live_spec(source, realtime=realtime)
        stream_id = stream_id or stream_id_for(spec.uri)
        for watch in watches:
            self.add_watch(stream_id, watch)
        if stream_id in self._actors and get(self._actors[stream_id].alive.remote()):
            return stream_id
        heron = self.heron
        heron._check_resources(streams=len(self._actors) + 1)
        self.store.register(stream_id, asdict(spec), started_at=time.time())
        options = actor_options(heron.cfg.stream_actor) | {
            "max_restarts": -1,
            "name": f"heron-stream-{stream_id}",
            "get_if_exists": True,
        }
        self._actors[stream_id] = RemoteStreamActor.options(**options).remote(
            heron.cfg, stream_id, spec, heron.latents, self.store, self.alerts, heron.stream_peers()
        )
        return stream_id

    def stop(self, stream_id: str) -> bool:
        """Stop reading a stream (its windows, watches and alerts stay); False if it was not running."""
        actor = self._actors.pop(stream_id, None) or self._named(stream_id)
        if actor is None:
            self._record(stream_id)  # unknown id: StreamNotFoundError
            return False
        try:
            get(actor.stop.remote(), timeout_s=60)
        finally:
            ray.kill(actor, no_restart=True)
        return True

    def stop_all(self) -> None:
        for stream_id in list(self._actors):
            try:
                self.stop(stream_id)
            except Exception as error:  # shutting down: one stuck stream must not keep the others
                log.warning("stopping stream %s: %s", stream_id, error)

    def list(self) -> list[dict]:
        return [self.status(stream_id) for stream_id in self.store.ids()]

    def status(self, stream_id: str) -> dict:
        """The stream record (lag, fps, windows, reconnects, ...), its last gaps and its watches."""
        record = self._record(stream_id)
        record["gaps"] = self.store.gaps(stream_id, count=20)
        record["watches"] = [Watch.from_dict(w).to_dict() for w in self.store.watches(stream_id).values()]
        record["running"] = stream_id in self._actors or self._named(stream_id) is not None
        return record

    def forget(self, stream_id: str) -> None:
        """Stop it if running, then delete its record, watches and cached windows."""
        if stream_id in self._actors or self._named(stream_id) is not None:
            self.stop(stream_id)
        self.heron.latents.clear_source(stream_id)
        self.store.forget(stream_id)

    def _record(self, stream_id: str) -> dict:
        record = self.store.get(stream_id)
        if record is None:
            raise StreamNotFoundError(f"no live stream {stream_id!r}; start one with `heron watch` or POST /v1/streams")
        return record

    def _named(self, stream_id: str):
        try:
            return ray.get_actor(f"heron-stream-{stream_id}")
        except ValueError:
            return None

    # --- watches ----------------------------------------------------------------------------------

    def add_watch(self, stream_id: str, watch: Watch) -> Watch:
        self.store.put_watch(stream_id, watch.watch_id, watch.to_dict(include_secret=True))
        return watch

    def remove_watch(self, stream_id: str, watch_id: str) -> bool:
        return self.store.remove_watch(stream_id, watch_id)

    def make_watch(
        self,
        question: str,
        *,
        watch_id: str | None = None,
        every: int | None = None,
        threshold: float | None = None,
        cooldown_s: float | None = None,
        examples: list[tuple[str, str, float | None, float | None]] = (),
        webhook: str | None = None,
        webhook_secret: str | None = None,
    ) -> Watch:
        """A watch with this Heron's defaults; example clips (label, source, start, end) are ingested now."""
        live = self.heron.cfg.live
        refs = []
        for label, source, start, end in examples:
            if label not in ("yes", "no"):
                raise ConfigError(f"an example's label must be yes or no, got {label!r}")
            report = self.heron.ingest(source, start=start, end=end)
            refs.append(Example(label, MediaRef(report.source_id, start or 0.0, math.inf if end is None else end)))
        return Watch(
            watch_id or uuid.uuid4().hex[:8],
            question,
            every or live.watch_every,
            live.watch_threshold if threshold is None else threshold,
            live.watch_cooldown_s if cooldown_s is None else cooldown_s,
            tuple(refs),
            webhook,
            webhook_secret,
        )

    # --- questions --------------------------------------------------------------------------------

    def question(
        self, source: str, question: str, *, last_s: float | None, session_id: str | None, **options
    ) -> AnswerRequest:
        """A question about a stream's last ``last_s`` seconds (None: all its cached windows)."""
        if self.store.get(source) is not None:
            stream_id = source
        else:  # a URL, or a file played in real time: its stream is found by what it reads
            stream_id = self.store.find(live_spec(source, realtime=Path(source).is_file()).uri)
        if stream_id is None:
            raise StreamNotFoundError(
                f"no live stream reads {source}; start one with `heron watch {source}` "
                "(or POST /v1/streams), then ask about its last minutes"
            )
        record = self._record(stream_id)
        end = record.get("last_t") or 0.0
        if not end:
            raise EmptyVideoError(f"live stream {stream_id} has no windows yet; ask again in a few seconds")
        start = max(0.0, end - last_s + 1e-3) if last_s is not None else 0.0  # (end - last_s, end]
        # what just happened is always in view, whichever windows the question selects besides
        newest = self.heron.cfg.answer.live_newest_windows
        return AnswerRequest.about(
            question, stream_id, start=start, end=end + 1e-3, session_id=session_id, newest=newest, **options
        )
