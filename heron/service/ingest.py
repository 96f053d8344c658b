"""One ingest through the actors: decode runs → encode calls → latents in Redis, with backpressure.

Decode actors hand over windows by reference, so frames go from a decode actor to an encode actor
through Ray's object store, never through the driver. At most ``ingest.max_in_flight`` encode
calls are outstanding; each asks a decoder for its next ``windows_per_call`` windows, so decoding
runs at most that far ahead of encoding and frames of several windows are encoded as one batch.

Crashes: Ray restarts a crashed actor and retries the calls it had (``max_restarts``,
``max_task_retries``). Each decode call names where in its run it starts (``offset``, in windows),
so a retried call on a restarted decode actor resumes there instead of at the run's start; a call
whose result is lost all the same (retries spent, an actor still restarting, an object lost)
is sent again with the same offset, for at most ``RETRY_FOR_S`` seconds. Each window is
therefore stored once, as in an undisturbed pass, and counted once.
"""

from __future__ import annotations

import logging
import sys
import time
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

log = logging.getLogger(__name__)

# A lost decode → encode call is sent again (after 0.5 s, doubling up to 5 s between tries) for at
# most this long: a restarting encode actor loads its model (5-20 s on 2 busy cores).
RETRY_FOR_S = 60.0
RETRY_WAITS_S = (0.5, 5.0)  # first wait, longest wait
_LOST = (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError)  # ActorDiedError, ActorUnavailableError, ...


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
    n = cfg.windows_per_call
    active = deque(range(len(runs)))  # decoders not yet seen to run out, served in turn
    asked = [0] * len(runs)  # windows of each run asked for so far: the next call's offset
    unreadable_from: list[float] = []  # start of each later run that could not decode at all
    in_flight: dict = {}  # encode call -> (decoder, offset in its run, when it was first lost or None, resends)
    calls = 0

    def send(d: int, offset: int, lost_at: float | None = None, resent: int = 0) -> None:
        nonlocal calls
        windows = decoders[d].next.remote(runs[d], n, offset)
        in_flight[encoders[calls % len(encoders)].encode.remote(windows)] = (d, offset, lost_at, resent)
        calls += 1

    try:
        while True:
            while active and len(in_flight) < cfg.max_in_flight:
                d = active[0]
                active.rotate(-1)
                send(d, asked[d])
                asked[d] += n
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
            d, offset, lost_at, resent = in_flight.pop(done)
            try:
                chunks = get(done)
            except (CorruptVideoError, EmptyVideoError):
                if d == 0:  # nothing decodes from the requested start: the caller's error
                    raise
                # A later run starts past where the file breaks off: the source ends there, as it
                # would for one decoder; what the earlier runs decoded is kept.
                unreadable_from.append(runs[d].start)
                chunks = []
            except _LOST as error:
                lost_at = time.monotonic() if lost_at is None else lost_at
                if time.monotonic() - lost_at > RETRY_FOR_S:
                    raise
                log.warning(
                    "ingest of %s: windows %d+ of a run lost (%s); sending the call again",
                    runs[d].source,
                    offset,
                    type(error).__name__,
                )
                time.sleep(min(RETRY_WAITS_S[0] * 2**resent, RETRY_WAITS_S[1]))
                send(d, offset, lost_at, resent + 1)
                continue
            if len(chunks) < n and d in active:  # a short batch ends that run
                active.remove(d)
            latents.put_chunks(chunks)
            report.windows_encoded += len(chunks)
            bar.update(len(chunks))
            if on_progress is not None:
                on_progress(report.windows_encoded, total)
        finished = [_finish(decoder, run, cfg.call_timeout_s) for decoder, run in zip(decoders, runs)]
    finally:
        bar.close()
    stats = [s for s in finished if s is not None]  # None: a run that could not open
    report.frames_decoded = sum(s["frames_decoded"] for s in stats)
    report.frames_sampled = sum(s["frames_kept"] for s in stats)
    report.decoder = stats[0]["decoder"] if stats else ""
    truncated = [s["truncated_at"] for s in stats if s["truncated_at"] is not None] + unreadable_from
    report.truncated_at = min(truncated) if truncated else None
    report.damaged = sorted((a, b) for s in stats for a, b, *_ in s.get("damaged", []))


def _finish(decoder, run: DecodeRun, timeout_s: float) -> dict | None:
    """A run's decode stats; None when its actor is gone (every window is stored: only stats are lost)."""
    try:
        return get(decoder.finish.remote(run), timeout_s=timeout_s)
    except _LOST as error:
        log.warning("ingest of %s: no decode stats (%s)", run.source, type(error).__name__)
        return None
