"""What a batch works on: videos × questions, read from a directory, a glob or a manifest.

    INPUT                   what it means
    videos/                 every video file below it (recursively, by extension), sorted
    "videos/**/*.mp4"       a glob (quoted, so the shell leaves it alone)
    list.txt                one path or URL per line (``#`` comments)
    list.csv                a header naming ``video`` (or ``path``/``url``), optionally ``question``,
                            ``from``, ``to``; several rows for one video ask several questions
    list.jsonl              {"video": ..., "question" | "questions": [...], "from", "to"} per line

Relative paths in a manifest are relative to the manifest. Questions given on the command line go
to every video that brings none of its own.
"""

from __future__ import annotations

import csv
import glob
import json
from dataclasses import dataclass
from pathlib import Path

from heron.errors import ConfigError, EmptyQuestionError, SourceNotFoundError
from heron.pipeline.answer import check_question
from heron.pipeline.windows import check_time_range

VIDEO_EXTENSIONS = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".ts",
    ".mts",
    ".flv",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".3gp",
    ".ogv",
)
MANIFESTS = (".txt", ".csv", ".jsonl")


@dataclass(frozen=True)
class BatchItem:
    """One question about one video; ``index`` keeps the input order in the results."""

    index: int
    video: str  # a local path (absolute) or a URL, as given
    question: str
    start: float | None = None
    end: float | None = None


Row = tuple[str, list[str], float | None, float | None]  # video, its own questions, from, to


def read_inputs(
    spec: str, questions: list[str] = (), *, start: float | None = None, end: float | None = None
) -> list[BatchItem]:
    """The items of a batch; typed errors naming what is wrong (no videos, a bad row, no questions)."""
    questions = [check_question(q) for q in questions]
    check_time_range(start, end)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() in MANIFESTS:
        rows = _manifest(path)
    elif path.is_dir():
        rows = [
            (str(p.resolve()), [], None, None)
            for p in sorted(path.rglob("*"))
            if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
        ]
        if not rows:
            raise SourceNotFoundError(f"no video files under {path} (extensions: {', '.join(VIDEO_EXTENSIONS)})")
    elif path.is_file():
        rows = [(str(path.resolve()), [], None, None)]
    elif any(c in spec for c in "*?["):
        found = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise SourceNotFoundError(f"the pattern {spec} matches no file")
        rows = [(str(Path(p).resolve()), [], None, None) for p in found]
    else:
        raise SourceNotFoundError(f"{spec} is not a directory, a video, a glob or a manifest ({', '.join(MANIFESTS)})")
    return build_items(rows, questions, start=start, end=end)


def build_items(
    rows: list[Row], questions: list[str] = (), *, start: float | None = None, end: float | None = None
) -> list[BatchItem]:
    """One item per (video, question): a row's own questions, else ``questions``; its range, else
    [start, end]. Typed errors for a video with no question or a bad range."""
    questions = [check_question(q) for q in questions]
    items = []
    for video, own, row_start, row_end in rows:
        asked = own or questions
        if not asked:
            raise EmptyQuestionError(
                f"no question for {video}: give --question (or --questions FILE), or questions in the manifest"
            )
        s, e = check_time_range(row_start if row_start is not None else start, row_end if row_end is not None else end)
        items += [BatchItem(len(items) + i, video, q, s, e) for i, q in enumerate(asked)]
    return items


def read_questions(path: str) -> list[str]:
    """``--questions FILE``: one question per line (``#`` comments)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise SourceNotFoundError(f"questions file not found: {file}")
    found = [line.strip() for line in file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not found:
        raise EmptyQuestionError(f"{file} holds no question")
    return found


def _manifest(path: Path) -> list[Row]:
    base = path.parent
    if path.suffix.lower() == ".txt":
        lines = [line.strip() for line in path.read_text().splitlines()]
        return [
            (_locate(line, base, path, n), [], None, None)
            for n, line in enumerate(lines, 1)
            if line and not line.startswith("#")
        ]
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            column = next((c for c in ("video", "path", "url") if c in (reader.fieldnames or [])), None)
            if column is None:
                raise ConfigError(f"{path}: the header must name a 'video' (or 'path', 'url') column")
            grouped: dict[tuple, list[str]] = {}
            for n, row in enumerate(reader, 2):
                key = (
                    _locate(row[column], base, path, n),
                    _number(row.get("from"), path, n),
                    _number(row.get("to"), path, n),
                )
                grouped.setdefault(key, [])
                if (row.get("question") or "").strip():
                    grouped[key].append(check_question(row["question"]))
            return [(v, qs, s, e) for (v, s, e), qs in grouped.items()]
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            video = item.get("video") or item.get("path") or item.get("url")
        except (ValueError, AttributeError):
            raise ConfigError(f"{path}:{n}: not a JSON object") from None
        if not video:
            raise ConfigError(f"{path}:{n}: no 'video' field")
        asked = item.get("questions") or ([item["question"]] if item.get("question") else [])
        rows.append(
            (
                _locate(video, base, path, n),
                [check_question(q) for q in asked],
                _number(item.get("from"), path, n),
                _number(item.get("to"), path, n),
            )
        )
    return rows


def _locate(text: str, base: Path, manifest: Path, line: int) -> str:
    text = text.strip()
    if "://" in text:
        return text
    candidate = Path(text).expanduser()
    candidate = candidate if candidate.is_absolute() else base / candidate
    if not candidate.is_file():
        raise SourceNotFoundError(f"{manifest}:{line}: video file not found: {candidate}")
    return str(candidate.resolve())


def _number(value, manifest: Path, line: int) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{manifest}:{line}: {value!r} is not a number of seconds") from None
