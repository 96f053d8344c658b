"""Live streams and watches: typed configuration (the ``live:`` section of a preset; flags override).

Defaults suit cameras over RTSP: short probes (a live source opens in under a second), reconnect
forever with exponential backoff and jitter, 24 h of windows kept per stream. See docs/live.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from heron.errors import ConfigError


@dataclass
class LiveConfig:
    open_timeout_s: float = 10.0  # connecting and probing; a server that accepts but never sends fails here
    read_timeout_s: float = 10.0  # no data this long: the connection is dropped and retried (HLS: > segment)
    rtsp_transport: Literal["tcp", "udp"] = "tcp"  # RTP over the RTSP connection, or over UDP
    format: str | None = None  # FFmpeg input format when it cannot be guessed (e.g. "mpjpeg", "v4l2")
    # FFmpeg's probe: how much it reads to find the streams. Its defaults need ~20 frames (2+ s at
    # 10 fps); these open RTSP in ~0.6 s with the right size and rate.
    analyzeduration_us: int = 500_000
    probesize: int = 32_768
    reconnect_initial_s: float = 0.5  # first wait before reconnecting; doubles per failed try
    reconnect_max_s: float = 30.0  # the waits stop growing here (reconnect goes on forever)
    reconnect_jitter: float = 0.25  # each wait is scaled by a random factor in [1 - j, 1 + j]
    retention_s: float = 24 * 3600.0  # windows older than this (stream time) are dropped from Redis
    retention_windows: int | None = None  # also keep at most this many windows (None: no count limit)
    max_queue: int = 8  # windows waiting to be encoded; beyond it the lag policy acts
    # skip: drop the oldest waiting window (a gap "behind live"); lower_fps: sample at half the
    # rate (down to min_fps) while behind, back up once caught up. Either way lag is reported.
    lag_policy: Literal["skip", "lower_fps"] = "skip"
    min_fps: float = 0.25
    gap_log: int = 1000  # gaps kept per stream (newest)
    # Watches (standing questions) take these unless they say otherwise.
    watch_every: int = 1  # score a watch on every n-th new window
    watch_threshold: float = 0.5  # P(yes) at or above this is a positive window
    watch_cooldown_s: float = 30.0  # after an event closes, no new event of that watch for this long
    alert_answer_tokens: int = 8  # the model's short answer carried by an alert
    alerts_kept: int = 10_000  # per stream (Redis Stream MAXLEN ~)

    def __post_init__(self) -> None:
        for name in (
            "open_timeout_s",
            "read_timeout_s",
            "reconnect_initial_s",
            "reconnect_max_s",
            "retention_s",
            "min_fps",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"live.{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.reconnect_jitter < 1:
            raise ConfigError(f"live.reconnect_jitter must be in [0, 1), got {self.reconnect_jitter!r}")
        if not 0 < self.watch_threshold < 1:
            raise ConfigError(f"live.watch_threshold must be in (0, 1), got {self.watch_threshold!r}")
        for name in ("max_queue", "watch_every", "gap_log", "alerts_kept"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ConfigError(f"live.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.retention_windows is not None and self.retention_windows < 1:
            raise ConfigError(f"live.retention_windows must be >= 1 or null, got {self.retention_windows!r}")
