"""Damaged spans of a stream: where a decoder skipped data it could not read, in seconds.

A span runs from the last good frame before the damage (frames the decoder held then are lost
with the damaged pictures; with no frame yet, from the first bad packet) to the next frame that
decodes. Damaged packets can carry garbage timestamps
(a flipped PES header said 95 s in a 6 s file), so a span's end is clamped to that good frame.
What FFmpeg does not report (light bit flips, a Matroska cluster skipped silently) is not seen:
the spans are a lower bound of the damage.
"""

from __future__ import annotations


def merged(spans: list[tuple[float, float, str]], gap_s: float) -> list[tuple[float, float, str]]:
    """Spans less than ``gap_s`` apart as one (the first one's reason), in time order."""
    out: list[list] = []
    for start, end, reason in sorted(spans):
        if out and start - out[-1][1] < gap_s:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end, reason])
    return [(a, b, r) for a, b, r in out]


class DamageLog:
    """Builds the (start, end, reason) spans of one decode pass into ``spans``."""

    def __init__(self, spans: list[tuple[float, float, str]]):
        self.spans = spans  # closed spans, shared with the reader's progress
        self._open: list | None = None  # [start, end, reason] of the span being built
        self.packets = 0  # packets skipped in all

    @property
    def is_open(self) -> bool:
        return self._open is not None

    def bad(self, pts: float | None, last_good: float | None, reason: str) -> None:
        """A packet (at ``pts`` s, None: unknown) was skipped after the frame at ``last_good``."""
        self.packets += 1
        if self._open is None:
            start = last_good if last_good is not None else (pts if pts is not None else 0.0)
            self._open = [start, max(start, pts) if pts is not None else start, reason]
        elif pts is not None:
            self._open[1] = max(self._open[1], pts)

    def good(self, pts: float) -> None:
        """A frame at ``pts`` decoded: the open span (if any) ends here."""
        if self._open is not None and pts > self._open[0]:
            start, end, reason = self._open
            self.spans.append((start, min(max(end, start), pts), reason))
            self._open = None

    def close(self, end: float | None) -> tuple[float, str] | None:
        """The stream ended: a span still open runs to ``end`` (None: its own last packet);
        returns its (start, reason) — damage that no good frame followed is a truncation."""
        if self._open is None:
            return None
        start, last, reason = self._open
        self.spans.append((start, max(last, end if end is not None else last), reason))
        self._open = None
        return start, reason
