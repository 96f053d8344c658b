"""Which cached windows of a range go into a prompt when there are more than ``answer.max_windows``.

    evenly   spread evenly over the range (first and last kept): the whole video at a glance
    similar  the windows most similar to the question in the retrieval space: first one window of
             each distinct moment that stands out (so a count or an order question sees every
             event, not two halves of one), then those moments' neighbours (an event that
             straddles two windows, what leads up to it), then the next most similar
    hybrid   half evenly, half similar: context for counting and order, and the evidence

A live stream's newest windows (``newest``) are always among them: what just happened. The chosen
windows always go to the model in time order. Similarity is the cosine of unit vectors
(``scores`` = window embeddings @ question embedding); without scores every mode is ``evenly``.
"""

from __future__ import annotations

import numpy as np

from heron.pipeline.prompts import evenly_spaced


def select_windows(
    scores: np.ndarray | None, n: int, limit: int, mode: str = "hybrid", *, newest: int = 0
) -> list[int]:
    """Positions (0..n-1, ascending) of at most ``limit`` of ``n`` windows; ``scores`` float [n] or
    None; the last ``newest`` positions always included."""
    if n <= limit:
        return list(range(n))
    recent = set(range(n - min(newest, limit), n))
    if scores is None or mode == "evenly":  # the rest spread evenly over what comes before them
        return sorted(recent | set(evenly_spaced(n - len(recent), limit - len(recent))))
    chosen: set[int] = recent | (set(evenly_spaced(n, limit // 2)) if mode == "hybrid" else set())
    ranked = [int(p) for p in np.argsort(-scores, kind="stable")]
    peaks = _moments(scores, ranked, limit - len(chosen))
    neighbours = [p for peak in peaks for p in sorted((peak - 1, peak + 1), key=lambda q: -_score(scores, q))]
    for position in peaks + neighbours + ranked:
        if len(chosen) >= limit:
            break
        if 0 <= position < n:
            chosen.add(position)
    return sorted(chosen)


def _moments(scores: np.ndarray, ranked: list[int], budget: int) -> list[int]:
    """At most ``budget`` positions, best first, that stand out (score above halfway from the
    median to the best) and are not next to one another: one window per distinct moment."""
    threshold = (float(scores[ranked[0]]) + float(np.median(scores))) / 2
    peaks: list[int] = []
    for position in ranked:
        if len(peaks) >= budget or (peaks and scores[position] <= threshold):
            break
        if all(abs(position - peak) > 1 for peak in peaks):
            peaks.append(position)
    return peaks


def _score(scores: np.ndarray, position: int) -> float:
    return float(scores[position]) if 0 <= position < len(scores) else -np.inf


def evidence(scores: np.ndarray | None, chosen: list[int], count: int) -> list[int]:
    """The ``count`` chosen positions most similar to the question, best first (all chosen, in
    order, when there are no scores: then nothing singles any window out)."""
    if scores is None:
        return list(chosen)
    return sorted(chosen, key=lambda p: -float(scores[p]))[:count]
