"""The question-answering service: Ray actors for decode → encode → answer, state in Redis.

    with Heron(load_pipeline_config("tiny")) as heron:
        result = heron.ask("lecture.mp4", "What is on the whiteboard?")
        print(result.answer.text, result.answer.spans)

``Heron`` starts (or joins, via ``ray_address``/``$RAY_ADDRESS``) Ray, finds or starts Redis,
and keeps one answer actor and a pool of encode and decode actors alive across questions. A
source is decoded and encoded once per encoder settings; later questions read its latents from
Redis. Actors start on first need, under a lock, so concurrent first questions start one of each.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import ray

from heron.actors import (
    DecodeRun,
    RemoteAnswerActor,
    RemoteDecodeActor,
    RemoteEncodeActor,
    StreamPeers,
    actor_options,
    check_cluster_has,
)
from heron.actors.calls import future_of, get
from heron.config import PipelineConfig
from heron.errors import ActorStartTimeoutError, EmptyVideoError, HeronError, StateUnavailableError
from heron.pipeline.answer import Answer, AnswerRequest, check_question
from heron.pipeline.decode import VideoDecoder
from heron.pipeline.fingerprint import encoder_settings
from heron.pipeline.sources import content_id, resolve_source
from heron.pipeline.windows import WindowGrid, check_time_range
from heron.service.ingest import decode_and_encode
from heron.service.reports import AskResult, IngestReport
from heron.service.runtime import init_ray
from heron.state import DialogueStore, LatentStore, RedisConnection, ensure_redis

log = logging.getLogger(__name__)


class Heron:
    """The warm service.

    namespace: the Redis key namespace (tests use their own). on_status: told what Heron is doing
    while a person waits (starting Ray, loading the model, ...), and None when it is done.
    """

    def __init__(
        self,
        cfg: PipelineConfig,
        *,
        redis_url: str | None = None,
        ray_address: str | None = None,
        progress: bool | None = None,
        namespace: str = "heron",
        on_status: Callable[[str | None], None] | None = None,
    ):
        self.cfg = cfg
        self._say = on_status or (lambda message: None)  # "starting Ray", ...; None: done
        self.grid = WindowGrid.of(cfg.decode)
        self.db = RedisConnection(ensure_redis(redis_url), namespace=namespace)
        self.latents = LatentStore(self.db, encoder_settings(cfg))
        self.dialogue = DialogueStore(self.db)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.ray_address = ray_address
        # Actors start on first need: a cached question never loads an encoder, and bad input
        # is rejected before any actor (or Ray itself) starts.
        self._encoders: list = []
        self._answerer = None
        self._encoder_names: tuple[str, ...] = ()  # the encode and answer actors' names (stream actors
        self._answerer_name = ""  # find them by name: stream_peers)
        self._answerer_loaded = False  # its constructor (the model load) has finished
        self._decoders: list = []  # decode actors, kept across ingests (started as needed)
        self._starting = threading.Lock()  # actors are created under it: one of each, however many ask
        self._idle_decoders: list = []  # those of them no ingest is using now
        self._ingest_slots = threading.BoundedSemaphore(cfg.ingest.parallel_ingests)

    # --- actors -----------------------------------------------------------------------------------

    @property
    def encoders(self) -> list:
        """The encode actors (started on first need)."""
        with self._starting:
            if not self._encoders:
                self._start_ray()
                self._check_resources(encoders=self.cfg.ingest.num_encoders)
                options = actor_options(self.cfg.ingest.encode)
                names = [_actor_name("encode") for _ in range(self.cfg.ingest.num_encoders)]
                self._encoders = [RemoteEncodeActor.options(**options, name=n).remote(self.cfg) for n in names]
                self._encoder_names = tuple(names)
            return self._encoders

    @property
    def answerer(self):
        """The answer actor (started on first need)."""
        with self._starting:
            if self._answerer is None:
                self._start_ray()
                self._check_resources(answerer=1)
                self._answerer_name = _actor_name("answer")
                options = actor_options(self.cfg.answer.actor) | {"name": self._answerer_name}
                self._answerer = RemoteAnswerActor.options(**options).remote(self.cfg, self.latents, self.dialogue)
            return self._answerer

    def stream_peers(self) -> StreamPeers:
        """The encode and answer actors a stream actor calls, by name (started if need be)."""
        _encoders, _answerer = self.encoders, self.answerer  # started here on first need
        with self._starting:
            return StreamPeers(self._encoder_names, self._answerer_name)

    def _start_ray(self) -> None:
        if not ray.is_initialized():
            self._say("starting Ray")
        init_ray(self.ray_address)

    def _checkout_decoders(self, k: int) -> list:
        """k decode actors for one ingest: idle ones of the pool first, new ones for the rest (a
        start costs 0.5–2 s); the pool keeps them for later ingests (``_checkin_decoders``)."""
        with self._starting:
            taken, self._idle_decoders = self._idle_decoders[:k], self._idle_decoders[k:]
            missing = k - len(taken)
            if missing:
                self._check_resources(decoders=len(self._decoders) + missing)
                options = actor_options(self.cfg.ingest.decode)
                fresh = [RemoteDecodeActor.options(**options).remote(self.cfg.decode) for _ in range(missing)]
                self._decoders += fresh
                taken += fresh
            return taken

    def _checkin_decoders(self, actors: list, *, healthy: bool) -> None:
        """Back to the pool; after a failed ingest they are killed instead (calls may still be
        queued on them, or one may be dead for good) and the next ingest starts fresh ones."""
        with self._starting:
            if healthy:
                self._idle_decoders += actors
                return
            for actor in actors:
                ray.kill(actor)
            self._decoders = [d for d in self._decoders if d not in actors]

    @functools.cached_property
    def streams(self):
        """The live streams this Heron runs (``service.streams.LiveStreams``)."""
        from heron.service.streams import LiveStreams

        return LiveStreams(self)

    @property
    def alerts(self):
        return self.streams.alerts

    def webhooks(self):
        """Start delivering the alerts of watches that have a webhook (``WebhookDelivery``; close it)."""
        from heron.service.webhooks import WebhookDelivery

        return WebhookDelivery(self.alerts, self.streams.store)

    def _check_resources(
        self,
        *,
        encoders: int | None = None,
        answerer: int | None = None,
        decoders: int | None = None,
        streams: int | None = None,
    ) -> None:
        """Before starting actors: this Heron's actors, with the new counts given, must fit the
        cluster together (``check_cluster_has``), or Ray would queue the last ones forever."""
        ingest = self.cfg.ingest
        check_cluster_has(
            [
                ("pipeline.ingest.encode", ingest.encode, len(self._encoders) if encoders is None else encoders),
                (
                    "pipeline.answer.actor",
                    self.cfg.answer.actor,
                    int(self._answerer is not None) if answerer is None else answerer,
                ),
                ("pipeline.ingest.decode", ingest.decode, len(self._decoders) if decoders is None else decoders),
                ("pipeline.stream_actor", self.cfg.stream_actor, self._stream_count() if streams is None else streams),
            ]
        )

    def __enter__(self) -> Heron:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _stream_count(self) -> int:
        return len(self.__dict__["streams"]._actors) if "streams" in self.__dict__ else 0

    def close(self) -> None:
        """Stop the live streams and release every actor (a later call starts fresh ones)."""
        if "streams" in self.__dict__:
            self.streams.stop_all()
        with self._starting:
            for actor in [*self._encoders, *self._decoders, *([self._answerer] if self._answerer is not None else [])]:
                ray.kill(actor)
            self._encoders, self._decoders, self._idle_decoders, self._answerer = [], [], [], None
            self._answerer_loaded = False

    # --- ingest -----------------------------------------------------------------------------------

    def ingest(
        self,
        source: str,
        *,
        start: float | None = None,
        end: float | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> IngestReport:
        """Make sure every window of [start, end] (default: the whole source) is in Redis.

        ``on_progress(windows_done, total)`` is told after each batch of windows is encoded."""
        return self._ingest(source, *check_time_range(start, end), on_valid=None, on_progress=on_progress)

    def _ingest(
        self,
        source: str,
        start: float | None,
        end: float | None,
        on_valid,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> IngestReport:
        clock = time.perf_counter()
        resolved = resolve_source(source)
        source_id = content_id(resolved)
        asked_start = start
        if self.cfg.decode.keyframes:  # keyframe windows are off the grid: one whole pass, cut when answering
            start = end = None
        cached = self._cached_windows(source_id, start, end)
        if cached is not None:
            return IngestReport(source_id, cached=True, windows_cached=cached, seconds=time.perf_counter() - clock)
        # Validate here (typed errors, no Ray wrapping) before any actor starts: probe, range, resolution.
        probe = VideoDecoder(resolved, self.cfg.decode, start=start, end=end, source_id=source_id)
        duration = probe.info.duration
        if asked_start is not None and duration is not None and asked_start >= duration:
            raise EmptyVideoError(f"no frames from {asked_start:g} s on: {resolved} is {duration:.1f} s long")
        if on_valid is not None:
            on_valid()
        self._start_ray()
        self._say(None)  # the progress bar takes over
        with self._ingest_slots:  # pipeline.ingest.parallel_ingests at once (each with its own decoders)
            report = self._decode_and_encode(
                str(resolved), source_id, start, end, probe, not resolved.is_url, on_progress
            )
        whole = start is None and end is None
        if whole and len(self.latents.cached_indices(source_id)) < report.windows_encoded:
            # a Redis that lost acknowledged writes (a failover, a machine crash): never mark it complete
            raise StateUnavailableError(
                f"Redis lost some of the {report.windows_encoded} windows of {source} just stored; run it again"
            )
        self.latents.add_damage(source_id, report.damaged)
        self.latents.set_source_info(
            source_id,
            duration_s=probe.info.duration,
            name=resolved.uri,
            n_windows=report.windows_encoded if whole else None,
            complete=True if whole else None,
        )
        report.seconds = time.perf_counter() - clock
        if report.truncated_at is not None:
            length = f"{probe.info.duration:.1f} s" if probe.info.duration else "an unknown length"
            log.warning(
                "%s: decoded %.1f s of %s; the rest is corrupt, so answers cover only what decoded",
                source,
                report.truncated_at,
                length,
            )
        return report

    def _cached_windows(self, source_id: str, start: float | None, end: float | None) -> int | None:
        """Number of cached windows if [start, end] is fully cached, else None."""
        info = self.latents.source_info(source_id)
        if info is None or info.cached_windows == 0:
            return None
        if info.complete:
            if start is not None and info.duration_s is not None and start >= info.duration_s:
                raise EmptyVideoError(f"no frames from {start:g} s on: the video is {info.duration_s:.1f} s long")
            return info.cached_windows
        needed = self.grid.indices(start, end, info.duration_s) if start is not None or end is not None else None
        if needed is None:
            return None
        have = self.latents.cached_indices(source_id)
        return len(needed) if have.issuperset(needed) else None

    def _segments(
        self, start: float | None, end: float | None, probe: VideoDecoder, seekable: bool
    ) -> list[tuple[float | None, float | None]]:
        """[start, end] cut on the window grid into one run per decode actor (ingest.decode_actors);
        a source of unknown length or a URL is read by one actor."""
        split = seekable and probe.info.duration and not self.cfg.decode.keyframes
        k = self.cfg.ingest.decode_actors if split else 1
        return self.grid.runs(start, end, probe.info.duration, k)

    def _decode_and_encode(
        self, source: str, source_id: str, start, end, probe: VideoDecoder, seekable: bool, on_progress
    ) -> IngestReport:
        runs = [DecodeRun(source, source_id, s, e) for s, e in self._segments(start, end, probe, seekable)]
        encoders = self.encoders
        decoders = self._checkout_decoders(len(runs))
        report = IngestReport(source_id, cached=False, duration_s=probe.info.duration, decode_actors=len(decoders))
        try:
            decode_and_encode(
                runs,
                decoders,
                encoders,
                self.latents,
                self.cfg.ingest,
                report,
                total=None if self.cfg.decode.keyframes else self.grid.count(start, end, probe.info.duration),
                progress=self.progress,
                on_progress=on_progress,
            )
        except BaseException:
            self._checkin_decoders(decoders, healthy=False)
            raise
        self._checkin_decoders(decoders, healthy=True)
        return report

    # --- questions --------------------------------------------------------------------------------

    def ask(
        self,
        source: str,
        question: str,
        *,
        start: float | None = None,
        end: float | None = None,
        session_id: str | None = None,
        **options,
    ) -> AskResult:
        """Answer ``question`` about [start, end] of ``source``, ingesting what is not cached.

        ``options``: AnswerRequest fields (max_new_tokens, sampling, stop), or ``last_s``: the last
        seconds of a live stream (``source`` its URL or id)."""
        clock = time.perf_counter()
        request, report = self._question(source, question, start, end, session_id, options)
        answer = get(self.answerer.answer.remote(request))
        return AskResult(answer, report, time.perf_counter() - clock)

    def ask_stream(
        self,
        source: str,
        question: str,
        *,
        start: float | None = None,
        end: float | None = None,
        session_id: str | None = None,
        **options,
    ) -> Iterator[str | AskResult]:
        """``ask``, streamed: the answer's text deltas as they are generated, then the AskResult."""
        clock = time.perf_counter()
        request, report = self._question(source, question, start, end, session_id, options)
        for item in self.answer_stream(request):
            if isinstance(item, str):
                yield item
            else:
                yield AskResult(item, report, time.perf_counter() - clock)

    def _question(self, source, question, start, end, session_id, options) -> tuple[AnswerRequest, IngestReport]:
        question = check_question(question)  # before any decoding: bad input costs nothing
        start, end = check_time_range(start, end)
        last_s = options.pop("last_s", None)
        if last_s is not None or self._is_live(source):
            request = self.streams.question(source, question, last_s=last_s, session_id=session_id, **options)
            self._wait_for_model()
            self._say("answering")
            return request, IngestReport(request.media[0].source_id, cached=True)
        # Once the source proved valid, the answer actor loads its model while the video decodes.
        report = self._ingest(source, start, end, on_valid=lambda: self.answerer)
        self._wait_for_model()
        self._say("answering")
        request = AnswerRequest.about(
            question,
            report.source_id,
            start=start or 0.0,
            end=end if end is not None else math.inf,
            session_id=session_id,
            **options,
        )
        return request, report

    def _is_live(self, source: str) -> bool:
        """A live URL (rtsp, ...) or the id or URL of a stream this Redis knows."""
        from heron.pipeline.live import LIVE_SCHEMES

        scheme = source.split("://", 1)[0].lower() if "://" in source else ""
        if scheme in LIVE_SCHEMES and scheme not in ("http", "https"):
            return True
        return self.streams.store.get(source) is not None or (
            scheme in ("http", "https") and self.streams.store.find(source) is not None
        )

    def answer(self, request: AnswerRequest) -> Answer:
        """Answer a request whose media are cached (``ingest`` them first); batched with others."""
        self._wait_for_model()
        return get(self.answerer.answer.remote(request))

    def answer_async(self, requests: list[AnswerRequest]) -> list[Future]:
        """Requests whose media are cached, sent at once without waiting: a Future per request
        (its Answer; its HeronError raised as itself). The answer actor batches them with each
        other and with every other caller's."""
        self._wait_for_model()
        return [future_of(self.answerer.answer.remote(request)) for request in requests]

    def answer_stream(self, request: AnswerRequest) -> Iterator[str | Answer]:
        """``answer``, streamed: text deltas as they are generated, then the Answer."""
        self._wait_for_model()
        for ref in self.answerer.stream.options(num_returns="streaming").remote(request):
            yield get(ref)

    def preload(self) -> None:
        """Start the answer actor without waiting: its model loads while videos decode."""
        self.answerer  # noqa: B018 (the property starts it)

    def warm_up(self) -> None:
        """Start the answer actor and wait for its model (a long-running service does this at start)."""
        self._wait_for_model()
        self._say(None)

    def healthy(self, timeout_s: float = 2.0) -> dict[str, bool]:
        """Whether Redis, Ray and the answer actor answer now (each within ``timeout_s``)."""
        checks = {"redis": False, "ray": False, "answer_actor": False}
        try:
            self.db.ping()
            checks["redis"] = True
        except HeronError:
            pass
        checks["ray"] = ray.is_initialized()
        if checks["ray"] and self._answerer is not None:
            try:
                checks["answer_actor"] = bool(get(self._answerer.ready.remote(), timeout_s=timeout_s))
            except Exception:  # dead, restarting or unreachable: not ready
                checks["answer_actor"] = False
        return checks

    def answer_stats(self) -> dict[str, int]:
        """The answer actor's batching counters (empty before it starts)."""
        return get(self._answerer.stats.remote(), timeout_s=5) if self._answerer is not None else {}

    def _wait_for_model(self) -> None:
        if not self._answerer_loaded:
            self._say("loading the model")
            timeout = self.cfg.answer.start_timeout_s
            try:
                self._answerer_loaded = get(self.answerer.ready.remote(), timeout_s=timeout)
            except ray.exceptions.GetTimeoutError:
                free = ray.available_resources()
                raise ActorStartTimeoutError(
                    f"the answer actor did not start within {timeout:g} s; the cluster has "
                    f"{free.get('CPU', 0):g} CPU / {free.get('GPU', 0):g} GPU free for its "
                    f"{self.cfg.answer.actor.num_cpus:g} CPU / {self.cfg.answer.actor.num_gpus:g} GPU "
                    "(another Heron may hold them), or its model loads slower than "
                    "pipeline.answer.start_timeout_s"
                ) from None

    def encoder_counters(self) -> list[dict[str, int]]:
        """Calls and windows each started encode actor has served (for reports and tests)."""
        return [get(encoder.counters.remote()) for encoder in self._encoders]


def _actor_name(role: str) -> str:
    """A cluster-unique actor name (several Herons may share one Ray cluster)."""
    return f"heron-{role}-{uuid.uuid4().hex[:12]}"
