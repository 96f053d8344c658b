"""One live stream, end to end: read → windows → encode → Redis → retention → watches → alerts.

Plain Python: the stream actor runs it and hands it Ray-backed ``encode`` (the encode pool),
``score`` and ``answer`` (the answer actor, which batches every stream's watches together);
a test can hand it local stages. Two threads:

- the reader samples the source at ``decode.fps`` into windows of ``decode.window_frames`` and
  queues them (at most ``live.max_queue``). When encoding falls behind real time it applies
  ``live.lag_policy``: ``skip`` drops the oldest queued window (a gap "behind live"),
  ``lower_fps`` halves the sampling rate (down to ``live.min_fps``) until the queue drains;
- the worker encodes each window, stores it under the next window index (continuing after a
  restart from the last index stored), drops windows past the retention horizon, scores the
  watches that are due and records their alerts once each (an idempotency key per event).

Lag (seconds behind live), decode frames/s, windows, reconnects and gaps go to the stream record.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from heron.config import PipelineConfig
from heron.errors import HeronError
from heron.pipeline.answer import Answer, AnswerRequest, MediaRef, ScoreRequest
from heron.pipeline.decode.sampling import FrameSampler
from heron.pipeline.live import Gap, LiveSource, LiveSpec
from heron.pipeline.watch import CHOICES, Transition, Watch, WatchState, p_yes, step
from heron.state import AlertStore, LatentStore, StreamStore
from heron.types import FrameBatch, MediaChunk

log = logging.getLogger(__name__)

Encode = Callable[[list[FrameBatch]], list[MediaChunk]]
Score = Callable[[list[ScoreRequest]], list]  # each: list of choice log-likelihoods, or an error
AnswerFn = Callable[[AnswerRequest], Answer]


@dataclass
class _Window:
    frames: list[np.ndarray]
    pts: list[float]


class StreamRunner:
    def __init__(
        self,
        stream_id: str,
        spec: LiveSpec,
        cfg: PipelineConfig,
        *,
        latents: LatentStore,
        streams: StreamStore,
        alerts: AlertStore,
        encode: Encode,
        score: Score,
        answer: AnswerFn | None = None,
    ):
        self.stream_id, self.spec, self.cfg = stream_id, spec, cfg
        self.latents, self.streams, self.alerts = latents, streams, alerts
        self.encode, self.score, self.answer = encode, score, answer
        self.stop = threading.Event()
        self._queue: collections.deque[FrameBatch] = collections.deque()
        self._ready = threading.Condition()
        self._reader_done = threading.Event()
        self.sample_fps = cfg.decode.fps
        record = streams.register(stream_id, asdict(spec), started_at=time.time())
        last = latents.last_window(stream_id)
        self.next_index = last[0] + 1 if last else 0
        self.source = LiveSource(
            spec,
            cfg.live,
            size=cfg.decode.size,
            started_at=record["started_at"],
            resume_at=record.get("last_t", 0.0) or 0.0,
            on_gap=self._gap,
            on_reconnect=self._reconnected,
            stop=self.stop,
        )
        self._decoded_at: collections.deque[tuple[float, int]] = collections.deque(maxlen=32)
        self._failed: str | None = None  # "failed" once the reader could not go on

    # --- running ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Read and process until ``stop`` is set (or a file played in real time ends)."""
        reader = threading.Thread(target=self._read, name=f"heron-live-{self.stream_id}", daemon=True)
        reader.start()
        self.streams.update(self.stream_id, status="running", error=None)
        try:
            while True:
                with self._ready:
                    self._ready.wait_for(lambda: self._queue or self._reader_done.is_set(), timeout=1.0)
                    batch = self._queue.popleft() if self._queue else None
                    self._ready.notify_all()  # a reader waiting for room
                if batch is None:
                    if self._reader_done.is_set():
                        break
                    continue
                try:
                    self._process(batch)
                except Exception as error:  # Redis away, an actor restarting: this window is lost, not the stream
                    log.warning(
                        "live stream %s: window %d lost: %s: %s",
                        self.stream_id,
                        batch.index,
                        type(error).__name__,
                        error,
                    )
                    self._note_error(batch, error)
        finally:
            ended = self._reader_done.is_set() and not self.stop.is_set() and not self._failed
            self.stop.set()
            with self._ready:
                self._ready.notify_all()
            reader.join(timeout=30)
            if ended:  # a file played in real time is over: so are its open events
                self._close_open_events()
            status = "ended" if self.spec.kind == "file" and not self._failed else "stopped"
            self.streams.update(self.stream_id, status=self._failed or status)

    def _read(self) -> None:
        window = _Window([], [])
        sampler = FrameSampler(self.sample_fps, None, None)
        try:
            for frame, t in self.source.frames(sampler):
                window.frames.append(frame)
                window.pts.append(t)
                self._decoded_at.append((time.monotonic(), self.source.frames_read))
                if len(window.frames) == self.cfg.decode.window_frames:
                    self._enqueue(window)
                    window = _Window([], [])
                    if self.sample_fps != sampler.step**-1:  # lower_fps changed the rate
                        sampler = FrameSampler(self.sample_fps, t + 1e-6, None)
        except Exception as error:  # the stream cannot go on (a bug, a decoder crash): say so in its record
            log.exception("live stream %s: reading failed", self.stream_id)
            self._failed = "failed"
            self.streams.update(self.stream_id, error=f"{type(error).__name__}: {error}")
        finally:
            self._reader_done.set()
            with self._ready:
                self._ready.notify_all()

    def _enqueue(self, window: _Window) -> None:
        batch = FrameBatch(self.stream_id, self.next_index, np.stack(window.frames), np.asarray(window.pts))
        self.next_index += 1
        with self._ready:
            if self.spec.kind == "file" and not self.spec.realtime:  # no live edge to keep up with: wait
                self._ready.wait_for(lambda: len(self._queue) < self.cfg.live.max_queue or self.stop.is_set())
            elif len(self._queue) >= self.cfg.live.max_queue:
                self._behind()
            self._queue.append(batch)
            self._ready.notify_all()

    def _behind(self) -> None:
        """Encoding is behind real time: apply the lag policy (called with the queue full)."""
        if self.cfg.live.lag_policy == "lower_fps" and self.sample_fps / 2 >= self.cfg.live.min_fps:
            self.sample_fps /= 2
            log.warning("live stream %s: behind live; sampling at %.3g fps", self.stream_id, self.sample_fps)
            return
        dropped = self._queue.popleft()
        self._gap(Gap(dropped.t_start, dropped.t_end, "skipped: encoding is behind live"))
        self.streams.add(self.stream_id, skipped_windows=1)

    # --- one window ------------------------------------------------------------------------------

    def _process(self, batch: FrameBatch) -> None:
        chunks = self.encode([batch])
        self.latents.put_chunks(chunks)
        self._retire(batch.t_end)
        lag = max(0.0, self.source.now - batch.t_end)
        self.streams.update(
            self.stream_id,
            last_t=batch.t_end,
            lag_s=round(lag, 3),
            decode_fps=self._decode_fps(),
            sample_fps=self.sample_fps,
            status="running",
            started_at=self.source.started_at,
        )
        self.streams.add(self.stream_id, windows=len(chunks), frames=len(batch.pts))
        if self.cfg.live.lag_policy == "lower_fps" and not self._queue and self.sample_fps < self.cfg.decode.fps:
            self.sample_fps = min(self.cfg.decode.fps, self.sample_fps * 2)  # caught up: back to the rate
        for chunk in chunks:
            self._watch(chunk)

    def _retire(self, now: float) -> None:
        live = self.cfg.live
        old = self.latents.windows_to_retire(
            self.stream_id, before_s=now - live.retention_s, keep=live.retention_windows
        )
        if old:
            self.latents.drop_windows(self.stream_id, old)

    def _decode_fps(self) -> float:
        if len(self._decoded_at) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._decoded_at[0], self._decoded_at[-1]
        return round((n1 - n0) / (t1 - t0), 2) if t1 > t0 else 0.0

    # --- watches ------------------------------------------------------------------------------------

    def _watch(self, chunk: MediaChunk) -> None:
        """Score the watches due on this window (one call for all of them), then record alerts."""
        watches = [Watch.from_dict(w) for w in self.streams.watches(self.stream_id).values()]
        states = {wid: WatchState.from_dict(s) for wid, s in self.streams.watch_states(self.stream_id).items()}
        window = MediaRef(self.stream_id, chunk.t_start, chunk.t_end)
        due = [
            w
            for w in watches
            if chunk.index > states.get(w.watch_id, WatchState()).last_index and chunk.index % w.every == 0
        ]
        if not due:
            return
        requests = []
        for watch in due:
            prompt, examples = watch.prompt()
            requests.append(ScoreRequest(prompt, (*examples, window), CHOICES))
        for watch, result in zip(due, self.score(requests)):
            if isinstance(result, Exception):
                log.warning("live stream %s: watch %s could not be scored: %s", self.stream_id, watch.watch_id, result)
                continue
            state = states.get(watch.watch_id, WatchState())
            transition = step(
                watch, state, index=chunk.index, t_start=chunk.t_start, t_end=chunk.t_end, score=p_yes(result)
            )
            if transition is not None:
                self._alert(watch, transition, window)
            self.streams.put_watch_state(self.stream_id, watch.watch_id, asdict(state))

    def _close_open_events(self) -> None:
        states = self.streams.watch_states(self.stream_id)
        for wid, data in self.streams.watches(self.stream_id).items():
            state = WatchState.from_dict(states.get(wid, {}))
            if state.open:
                state.open, state.closed_at = False, state.last_end
                change = Transition("close", state.event, state.start, state.last_end, state.best, tuple(state.windows))
                self._alert(Watch.from_dict(data), change, MediaRef(self.stream_id))
                self.streams.put_watch_state(self.stream_id, wid, asdict(state))

    def _alert(self, watch: Watch, change: Transition, window: MediaRef) -> None:
        started_at = self.source.started_at
        alert = {
            "stream": self.stream_id,
            "source": self.spec.label,
            "watch": watch.watch_id,
            "question": watch.question,
            "event": change.event,
            "kind": change.kind,
            "start": round(change.start, 3),
            "end": None if change.end is None else round(change.end, 3),
            "start_utc": _utc(started_at + change.start),
            "end_utc": None if change.end is None else _utc(started_at + change.end),
            "score": round(change.score, 4),
            "windows": list(change.windows),
            "answer": self._short_answer(watch, window) if change.kind == "open" else None,
        }
        key = f"{watch.watch_id}:{change.event}:{change.kind}"
        if self.alerts.push_alert_once(self.stream_id, key, alert) is not None:
            log.info("live stream %s: %s %s event %d", self.stream_id, watch.watch_id, change.kind, change.event)

    def _short_answer(self, watch: Watch, window: MediaRef) -> str | None:
        if self.answer is None:
            return None
        try:
            request = AnswerRequest(
                prompt=watch.prompt()[0],
                media=[*watch.prompt()[1], window],
                max_new_tokens=self.cfg.live.alert_answer_tokens,
            )
            return self.answer(request).text
        except HeronError as error:
            log.warning("live stream %s: no short answer for %s: %s", self.stream_id, watch.watch_id, error)
            return None

    # --- what happened ---------------------------------------------------------------------------

    def _gap(self, gap: Gap) -> None:
        self.streams.add_gap(
            self.stream_id,
            {
                **asdict(gap),
                "start_utc": _utc(self.source.started_at + gap.start),
                "end_utc": _utc(self.source.started_at + gap.end),
            },
            keep=self.cfg.live.gap_log,
        )

    def _note_error(self, batch: FrameBatch, error: Exception) -> None:
        try:
            self._gap(Gap(batch.t_start, batch.t_end, f"lost: {type(error).__name__}: {error}"[:300]))
            self.streams.update(self.stream_id, error=f"{type(error).__name__}: {error}"[:500])
        except HeronError:
            pass  # Redis itself is down: the log has it

    def _reconnected(self, reason: str) -> None:
        self.streams.add(self.stream_id, reconnects=1)
        self.streams.update(self.stream_id, status="reconnecting", error=reason)


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"
