"""What the service reports back: how an ingest went, and an answer with it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from heron.pipeline.answer import Answer
from heron.text import plural
from heron.text import seconds as in_seconds


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
    damaged: list[tuple[float, float]] = field(default_factory=list)  # spans skipped as undecodable (s)
    duration_s: float | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        if self.cached:
            return f"{plural(self.windows_cached, 'window')} from cache (nothing decoded or encoded)"
        by = f"{self.decoder}, {self.decode_actors} actors" if self.decode_actors > 1 else self.decoder
        damaged = f"; skipped damaged data in {plural(len(self.damaged), 'span')}" if self.damaged else ""
        return (
            f"decoded {plural(self.frames_decoded, 'frame')} ({by}), sampled {self.frames_sampled:,}, "
            f"encoded {plural(self.windows_encoded, 'window')} in {in_seconds(self.seconds)}{damaged}"
        )


@dataclass
class AskResult:
    answer: Answer
    ingest: IngestReport
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "answer": self.answer.text,
            "spans": [[round(a, 3), round(b, 3)] for a, b in self.answer.spans],
            "session": self.answer.session_id,
            "source_id": self.answer.source_id,
            "ingest": asdict(self.ingest),
            "seconds": round(self.seconds, 3),
            "warnings": self.answer.warnings,
            "evidence": [[round(a, 3), round(b, 3)] for a, b in self.answer.evidence],
            "when": None if self.answer.when is None else [round(t, 3) for t in self.answer.when],
        }

    def summary(self) -> str:
        used = plural(self.answer.windows_used, "window")
        return f"{self.ingest.summary()}; answered from {used} in {in_seconds(self.answer.seconds)}"
