"""Accuracy of the whole pipeline on a question set: ingest each video, ask, compare (``heron eval --pipeline``).

``heron eval`` scores the model on windows decoded for it; long videos need what only the pipeline
does — windows cached in Redis, chosen by question (``answer.selection``), "when" answers turned
into times — so their questions are asked through ``Heron`` exactly as a user's are. Per answer:

    correct   the normalised answer equals the truth; for ``long_when``, the answered span lies
              within one window of the event (overlaps [start - w, end + w], w = window length)
    cited     one of the answer's evidence spans overlaps one of the question's evidence spans
              (questions with evidence only): the report's ``evidence_recall``
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from heron.service.heron import Heron
from heron.train.evaluate import Question, normalize_answer

Span = tuple[float, float]


def overlaps(a: Span, b: Span, slack: float = 0.0) -> bool:
    return a[0] <= b[1] + slack and b[0] - slack <= a[1]


def evaluate_pipeline(
    heron: Heron, questions: list[Question], *, on_progress: Callable[[int, int], None] | None = None
) -> dict:
    """Ask every question through ``heron`` (each video ingested once); a report as ``heron eval``'s
    (overall, categories) with ``evidence_recall`` per category, seconds and per-question rows."""
    window = heron.cfg.decode.window_frames / heron.cfg.decode.fps
    rows, ingest_s, answer_s = [], 0.0, 0.0
    by_video: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        by_video[q.media.video].append(q)
    done = 0
    for video, items in by_video.items():
        clock = time.perf_counter()
        heron.ingest(video)
        ingest_s += time.perf_counter() - clock
        for q in items:
            clock = time.perf_counter()
            result = heron.ask(video, q.question, start=q.media.start, end=q.media.end)
            answer_s += time.perf_counter() - clock
            rows.append(_row(q, result.answer, window))
            done += 1
            if on_progress is not None:
                on_progress(done, len(questions))
    by_category = defaultdict(list)
    for r in rows:
        by_category[r["category"]].append(r)
    return {
        "metric": "pipeline answers (heron.ask on each video, cached); long_when: within one window of the event",
        "questions": len(rows),
        "videos": len(by_video),
        "window_s": window,
        "selection": heron.cfg.answer.selection,
        "when": heron.cfg.answer.when,
        "overall": _summary(rows),
        "categories": {k: _summary(v) for k, v in sorted(by_category.items())},
        "seconds": {"ingest": round(ingest_s, 1), "answers": round(answer_s, 1)},
        "rows": rows,
    }


def _row(q: Question, answer, window: float) -> dict:
    if q.category == "long_when":
        correct = answer.when is not None and any(overlaps(answer.when, e, slack=window) for e in q.evidence)
    else:
        correct = normalize_answer(answer.text) == normalize_answer(q.answer)
    cited = any(overlaps(a, e) for a in answer.evidence for e in q.evidence) if q.evidence else None
    return {
        "id": q.id,
        "category": q.category,
        "question": q.question,
        "truth": q.answer,
        "answer": answer.text,
        "correct": correct,
        "cited": cited,
        "evidence": [list(e) for e in answer.evidence],
    }


def _summary(rows: list[dict]) -> dict:
    cited = [r["cited"] for r in rows if r["cited"] is not None]
    return {
        "n": len(rows),
        "accuracy": round(sum(r["correct"] for r in rows) / len(rows), 4) if rows else None,
        "evidence_recall": round(sum(cited) / len(cited), 4) if cited else None,
    }


def format_pipeline_report(report: dict) -> str:
    """The plain-text table ``heron eval --pipeline`` prints."""
    lines = [
        f"pipeline accuracy ({report['questions']} questions, {report['videos']} videos, "
        f"selection {report['selection']}, when by {report.get('when', 'model')})",
        f"  {'category':<18} {'n':>6} {'accuracy':>9} {'evidence':>9}",
    ]
    for name, s in list(report["categories"].items()) + [("overall", report["overall"])]:
        recall = f"{s['evidence_recall']:.3f}" if s["evidence_recall"] is not None else "  -  "
        lines.append(f"  {name:<18} {s['n']:>6} {s['accuracy']:>9.3f} {recall:>9}")
    return "\n".join(lines)
