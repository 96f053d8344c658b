"""One ingest through the actors: decode runs → encode calls → latents in Redis, with backpressure.

Decode actors hand over windows by reference, so frames go from a decode actor to an encode actor
through Ray's object store, never through the driver. At most ``ingest.max_in_flight`` encode
calls are outstanding; each asks a decoder for its next ``windows_per_call`` windows, so decoding
runs at most that far ahead of encoding and frames of several windows are encoded as one batch.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Sequence

import ray
from tqdm import tqdm

from heron.actors import DecodeRun
from heron.actors.calls import get
from heron.config import IngestConfig
from heron.errors import CorruptVideoError, EmptyVideoError, IngestTimeoutError
from heron.service.reports import IngestReport
from heron.state import LatentStore


def decode_and_encode(
    runs: Sequence[DecodeRun],
    decoders: Sequence,
    encoders: Sequence,
    latents: LatentStore,
    cfg: IngestConfig,
    report: IngestReport,
    *,
    total: int | None,
    progress: bool,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> None:
    """Run ``runs`` (one per decoder) to their end, writing every window to ``latents``; fills ``report``.

    ``on_progress(windows_done, total)`` after each encode call (jobs, metrics); ``progress``: a bar."""
    bar = tqdm(total=total, unit="window", desc="encoding", disable=not progress, file=sys.stderr)
    active = deque(range(len(runs)))  # decoders not yet seen to run out, served in turn
    unreadable_from: list[float] = []  # start of each later run that could not decode at all
    in_flight: dict = {}  # encode call -> the decoder whose windows it encodes
    calls = 0
    try:
        while True:
            while active and len(in_flight) < cfg.max_in_flight:
                d = active[0]
                active.rotate(-1)
                windows = decoders[d].next.remote(runs[d], cfg.windows_per_call)
                in_flight[encoders[calls % len(encoders)].encode.remote(windows)] = d
                calls += 1
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=cfg.call_timeout_s)
            if not ready:
                raise IngestTimeoutError(
                    f"no encode result for {cfg.call_timeout_s:g} s: the encode or decode actors may not have "
                    "started (a cluster without room for them) or a decoder hangs; see `ray status`, or raise "
                    "pipeline.ingest.call_timeout_s for very slow machines"
                )
            [done] = ready
            d = in_flight.pop(done)
            try:
                chunks = get(done)
            except (CorruptVideoError, EmptyVideoError):
                if d == 0:  # nothing decodes from the requested start: the caller's error
                    raise
                # A later run starts past where the file breaks off: the source ends there, as it
                # would for one decoder; what the earlier runs decoded is kept.
                unreadable_from.append(runs[d].start)
                chunks = []
            if len(chunks) < cfg.windows_per_call and d in active:  # a short batch ends that run
                active.remove(d)
            latents.put_chunks(chunks)
            report.windows_encoded += len(chunks)
            bar.update(len(chunks))
            if on_progress is not None:
                on_progress(report.windows_encoded, total)
        finished = [get(decoder.finish.remote(run)) for decoder, run in zip(decoders, runs)]
    finally:
        bar.close()
    stats = [s for s in finished if s is not None]  # None: a run that could not open
    report.frames_decoded = sum(s["frames_decoded"] for s in stats)
    report.frames_sampled = sum(s["frames_kept"] for s in stats)
    report.decoder = stats[0]["decoder"] if stats else ""
    truncated = [s["truncated_at"] for s in stats if s["truncated_at"] is not None] + unreadable_from
    report.truncated_at = min(truncated) if truncated else None
