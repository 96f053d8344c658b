"""The question-answering service: Ray actors for decode → encode → answer, state in Redis.

    with Heron(load_pipeline_config("tiny")) as heron:
        result = heron.ask("lecture.mp4", "What is on the whiteboard?")
        print(result.answer.text, result.answer.spans)

``Heron`` starts (or joins, via ``ray_address``/``$RAY_ADDRESS``) Ray, finds or starts Redis,
and keeps one answer actor and a pool of encode actors alive across questions. A source is
decoded and encoded once per encoder settings; later questions read its latents from Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ray
from tqdm import tqdm

from heron.actors import AnswerActor, DecodeActor, DecodeRun, EncodeActor, check_cluster_has, remote
from heron.config import config_dir
from heron.errors import CorruptVideoError, EmptyVideoError, HeronError
from heron.pipeline.answer import Answer, check_question
from heron.pipeline.config import PipelineConfig
from heron.pipeline.decode import VideoDecoder, check_time_range
from heron.pipeline.decode_stage import window_grid
from heron.pipeline.redis_server import ensure_redis
from heron.pipeline.sources import content_id, resolve_source
from heron.pipeline.store import RedisStateStore

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    source_id: str
    cached: bool  # True: every window was already in Redis, nothing was decoded or encoded
    frames_decoded: int = 0
    frames_sampled: int = 0
    windows_encoded: int = 0
    windows_cached: int = 0
    decoder: str = ""
    decode_actors: int = 0  # decode actors that read the source in parallel, each a run of windows
    truncated_at: float | None = None  # seconds; the video is corrupt from here on
    duration_s: float | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        if self.cached:
            return f"{self.windows_cached} windows from cache (nothing decoded or encoded)"
        by = f"{self.decoder}, {self.decode_actors} actors" if self.decode_actors > 1 else self.decoder
        return (f"decoded {self.frames_decoded} frames ({by}), sampled {self.frames_sampled}, "
                f"encoded {self.windows_encoded} windows in {self.seconds:.1f} s")


@dataclass
class AskResult:
    answer: Answer
    ingest: IngestReport
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"answer": self.answer.text, "spans": self.answer.spans, "session": self.answer.session_id,
                "source_id": self.answer.source_id, "ingest": asdict(self.ingest), "seconds": self.seconds}

    def summary(self) -> str:
        return f"{self.ingest.summary()}; answered from {self.answer.windows_used} windows in {self.answer.seconds:.1f} s"


def model_fingerprint(model: str) -> str:
    """Identify a model for the latents cache: a saved directory by its weights, a preset by its text."""
    path = Path(model)
    if path.is_dir():
        digest = hashlib.blake2b(digest_size=8)
        for name in ("heron.yaml", "model.safetensors"):
            if (path / name).exists():
                stat = (path / name).stat()
                digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return f"dir:{path.resolve().name}:{digest.hexdigest()}"
    preset = path if path.suffix else config_dir() / f"{model}.yaml"
    text = preset.read_bytes() if preset.is_file() else model.encode()
    return f"preset:{path.stem}:{hashlib.blake2b(text, digest_size=8).hexdigest()}"


def encoder_settings(cfg: PipelineConfig) -> dict:
    """Everything that shapes a window's latents: the cache key's fingerprint is made of it."""
    size = list(cfg.decode.size) if isinstance(cfg.decode.size, tuple) else cfg.decode.size
    return {"model": model_fingerprint(cfg.model), "fps": cfg.decode.fps,
            "window_frames": cfg.decode.window_frames, "size": size}


def init_ray(address: str | None = None) -> None:
    """Join ``address`` / ``$RAY_ADDRESS`` if given, else start a local Ray (once per process)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             configure_logging=False)


def get(ref):
    """``ray.get`` that re-raises Heron's own errors as themselves, not wrapped in RayTaskError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, HeronError):
            raise error.cause from None
        raise


class Heron:
    def __init__(self, cfg: PipelineConfig, *, redis_url: str | None = None, ray_address: str | None = None,
                 progress: bool | None = None):
        self.cfg = cfg
        self.redis_url = ensure_redis(redis_url)
        self.store = RedisStateStore(self.redis_url, encoder_settings=encoder_settings(cfg))
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.ray_address = ray_address
        # Actors start on first need: a cached question never loads an encoder, and bad input
        # is rejected before any actor (or Ray itself) starts.
        self._encoders: list = []
        self._answerer = None
        self._decoders: list = []  # decode actors, kept across ingests (started as needed)
        self._ingesting = threading.Lock()  # one ingest at a time uses the decode actors

    @property
    def encoders(self) -> list:
        if not self._encoders:
            init_ray(self.ray_address)
            self._check_resources(encoders=self.cfg.ingest.num_encoders)
            encode_actor = remote(EncodeActor, self.cfg.ingest.encode)
            self._encoders = [encode_actor.remote(self.cfg) for _ in range(self.cfg.ingest.num_encoders)]
        return self._encoders

    @property
    def answerer(self):
        if self._answerer is None:
            init_ray(self.ray_address)
            self._check_resources(answerer=1)
            self._answerer = remote(AnswerActor, self.cfg.answer.actor).remote(self.cfg, self.store)
        return self._answerer

    def __enter__(self) -> Heron:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for actor in [*self._encoders, *self._decoders, *([self._answerer] if self._answerer is not None else [])]:
            ray.kill(actor)
        self._encoders, self._decoders, self._answerer = [], [], None

    def _check_resources(self, *, encoders: int | None = None, answerer: int | None = None,
                         decoders: int | None = None) -> None:
        """Before starting actors: this Heron's actors, with the new counts given, must fit the
        cluster together (``check_cluster_has``), or Ray would queue the last ones forever."""
        ingest = self.cfg.ingest
        check_cluster_has([
            ("pipeline.ingest.encode", ingest.encode, len(self._encoders) if encoders is None else encoders),
            ("pipeline.answer.actor", self.cfg.answer.actor,
             int(self._answerer is not None) if answerer is None else answerer),
            ("pipeline.ingest.decode", ingest.decode, len(self._decoders) if decoders is None else decoders)])

    def _decode_actors(self, k: int) -> list:
        """k decode actors: the pool's, grown on first need. Each ingest used to start its own,
        and that start (0.5–2 s) was most of what a short ingest lost to its bound."""
        if k > len(self._decoders):
            self._check_resources(decoders=k)
            decode_actor = remote(DecodeActor, self.cfg.ingest.decode)
            self._decoders += [decode_actor.remote(self.cfg.decode) for _ in range(k - len(self._decoders))]
        return self._decoders[:k]

    # --- ingest -------------------------------------------------------------------------------

    def ingest(self, source: str, *, start: float | None = None, end: float | None = None) -> IngestReport:
        """Make sure every window of [start, end] (default: the whole source) is in Redis."""
        return self._ingest(source, start, end, on_valid=None)

    def _ingest(self, source: str, start: float | None, end: float | None, on_valid) -> IngestReport:
        clock = time.perf_counter()
        resolved = resolve_source(source)
        source_id = content_id(resolved)
        cached = self._cached_windows(source_id, start, end)
        if cached is not None:
            return IngestReport(source_id, cached=True, windows_cached=cached, seconds=time.perf_counter() - clock)
        # Validate here (typed errors, no Ray wrapping) before any actor starts: probe, range, resolution.
        probe = VideoDecoder(resolved, self.cfg.decode, start=start, end=end, source_id=source_id)
        if on_valid is not None:
            on_valid()
        init_ray(self.ray_address)
        with self._ingesting:
            report = self._run_decode_encode(str(resolved), source_id, start, end, probe,
                                             seekable=not resolved.is_url)
        whole = start is None and end is None
        self.store.set_source_info(source_id, duration_s=probe.info.duration, name=resolved.uri,
                                   n_windows=report.windows_encoded if whole else None, complete=True if whole else None)
        report.seconds = time.perf_counter() - clock
        if report.truncated_at is not None:
            length = f"{probe.info.duration:.1f} s" if probe.info.duration else "an unknown length"
            log.warning("%s: decoded %.1f s of %s; the rest is corrupt, so answers cover only what decoded",
                        source, report.truncated_at, length)
        return report

    def _cached_windows(self, source_id: str, start: float | None, end: float | None) -> int | None:
        """Number of cached windows if [start, end] is fully cached, else None."""
        info = self.store.source_info(source_id)
        if info is None or info.cached_windows == 0:
            return None
        if info.complete:
            if start is not None and info.duration_s is not None and start >= info.duration_s:
                raise EmptyVideoError(f"no frames from {start:g} s on: the video is {info.duration_s:.1f} s long")
            return info.cached_windows
        if start is None and end is None or info.duration_s is None:
            return None
        fps, frames = self.cfg.decode.fps, self.cfg.decode.window_frames
        _, first = window_grid(start, self.cfg.decode)
        stop = min(end if end is not None else math.inf, info.duration_s)
        last = max(first, math.ceil(stop * fps / frames) - 1)
        have = {c.index for c in self.store.chunks_in_range(source_id, start or 0.0, stop)}
        return len(have) if have >= set(range(first, last + 1)) else None

    def _segments(self, start: float | None, end: float | None, probe: VideoDecoder,
                  seekable: bool) -> list[tuple[float | None, float | None]]:
        """[start, end] cut into runs of whole windows, one per decode actor (ingest.decode_actors).

        Cuts fall on the window grid, so each window is decoded by exactly one actor and keyed as a
        single pass would key it. A source of unknown length or a URL is read by one actor."""
        wanted, duration = self.cfg.ingest.decode_actors, probe.info.duration
        if wanted == 1 or not seekable or not duration:
            return [(start, end)]
        window_s = self.cfg.decode.window_frames / self.cfg.decode.fps
        _, first = window_grid(start, self.cfg.decode)
        last = max(first, math.ceil(min(end if end is not None else math.inf, duration) / window_s - 1e-9) - 1)
        n = last - first + 1
        k = min(wanted, n)
        cuts = [first + (i * n) // k for i in range(k + 1)]  # window indices; cuts[0] = first, cuts[k] = last + 1
        # The first run keeps the caller's start, the last its end (None: to the real end of the file).
        return [(start if i == 0 else cuts[i] * window_s, end if i == k - 1 else cuts[i + 1] * window_s)
                for i in range(k)]

    def _run_decode_encode(self, source: str, source_id: str, start, end, probe: VideoDecoder,
                           seekable: bool) -> IngestReport:
        ingest = self.cfg.ingest
        runs = [DecodeRun(source, source_id, s, e) for s, e in self._segments(start, end, probe, seekable)]
        encoders = self.encoders
        decoders = self._decode_actors(len(runs))
        report = IngestReport(source_id, cached=False, duration_s=probe.info.duration, decode_actors=len(decoders))
        span = (min(end or math.inf, probe.info.duration or math.inf) - (start or 0.0))
        total = math.ceil(span * self.cfg.decode.fps / self.cfg.decode.window_frames) if math.isfinite(span) else None
        bar = tqdm(total=total, unit="window", desc="encoding", disable=not self.progress, file=sys.stderr)
        active = deque(range(len(decoders)))  # decoders not yet seen to run out, served in turn
        unreadable_from: list[float] = []  # start of each later run that could not decode at all
        in_flight: dict = {}  # encode call -> the decoder whose windows it encodes
        calls = 0
        try:
            while True:
                # Pipelining with backpressure: keep at most max_in_flight encode calls queued; each
                # takes a decoder's next windows by reference, so frames never pass the driver.
                while active and len(in_flight) < ingest.max_in_flight:
                    d = active[0]
                    active.rotate(-1)
                    windows = decoders[d].next.remote(runs[d], ingest.windows_per_call)
                    in_flight[encoders[calls % len(encoders)].encode.remote(windows)] = d
                    calls += 1
                if not in_flight:
                    break
                [done], _ = ray.wait(list(in_flight), num_returns=1)
                d = in_flight.pop(done)
                try:
                    chunks = get(done)
                except (CorruptVideoError, EmptyVideoError):
                    if d == 0:  # nothing decodes from the requested start: the caller's error
                        raise
                    # A later run starts past where the file breaks off: the source ends there,
                    # as it would for one decoder; what the earlier runs decoded is kept.
                    unreadable_from.append(runs[d].start)
                    chunks = []
                if len(chunks) < ingest.windows_per_call and d in active:  # a short batch ends that run
                    active.remove(d)
                for chunk in chunks:
                    self.store.put_chunk(chunk)
                report.windows_encoded += len(chunks)
                bar.update(len(chunks))
            finished = [get(decoder.finish.remote(run)) for decoder, run in zip(decoders, runs)]
        except BaseException:
            # Calls may still be queued on the pool's actors, or one may be dead for good: the
            # next ingest starts a fresh pool rather than wait on (or fail with) these.
            for decoder in self._decoders:
                ray.kill(decoder)
            self._decoders = []
            raise
        finally:
            bar.close()
        stats = [s for s in finished if s is not None]  # None: a run that could not open
        report.frames_decoded = sum(s["frames_decoded"] for s in stats)
        report.frames_sampled = sum(s["frames_kept"] for s in stats)
        report.decoder = stats[0]["decoder"] if stats else ""
        truncated = [s["truncated_at"] for s in stats if s["truncated_at"] is not None] + unreadable_from
        report.truncated_at = min(truncated) if truncated else None
        return report

    # --- questions -----------------------------------------------------------------------------

    def ask(self, source: str, question: str, *, start: float | None = None, end: float | None = None,
            session_id: str | None = None) -> AskResult:
        """Answer ``question`` about [start, end] of ``source``, ingesting what is not cached."""
        clock = time.perf_counter()
        question = check_question(question)  # before any decoding: bad input costs nothing
        start, end = check_time_range(start, end)
        # Once the source proved valid, the answer actor loads its model while the video decodes.
        report = self._ingest(source, start, end, on_valid=lambda: self.answerer)
        answer = get(self.answerer.answer.remote(question, report.source_id, start or 0.0,
                                                 end if end is not None else math.inf, session_id))
        return AskResult(answer, report, time.perf_counter() - clock)

    def encoder_counters(self) -> list[dict[str, int]]:
        """Calls and windows each started encode actor has served (for reports and tests)."""
        return [get(encoder.counters.remote()) for encoder in self._encoders]
