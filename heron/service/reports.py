"""What the service reports back: how an ingest went, and an answer with it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from heron.pipeline.answer import Answer


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
        return (
            f"decoded {self.frames_decoded} frames ({by}), sampled {self.frames_sampled}, "
            f"encoded {self.windows_encoded} windows in {self.seconds:.1f} s"
        )


@dataclass
class AskResult:
    answer: Answer
    ingest: IngestReport
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "answer": self.answer.text,
            "spans": self.answer.spans,
            "session": self.answer.session_id,
            "source_id": self.answer.source_id,
            "ingest": asdict(self.ingest),
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        return (
            f"{self.ingest.summary()}; answered from {self.answer.windows_used} windows in {self.answer.seconds:.1f} s"
        )
