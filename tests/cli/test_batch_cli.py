"""`heron batch` and `heron jobs` as a user types them: results file, exit status, resume, keyframes."""

from __future__ import annotations

import json

import pytest

from heron.cli import main
from tests.batch.conftest import QUESTIONS, make_archive

pytestmark = pytest.mark.integration


@pytest.fixture
def env(ray_session, redis_url, monkeypatch):
    monkeypatch.setenv("HERON_REDIS_URL", redis_url)
    monkeypatch.delenv("HERON_CONFIG", raising=False)  # the default: the demo model
    monkeypatch.delenv("HERON_MODEL", raising=False)


def test_batch_writes_each_row_once_exits_1_on_failures_and_jobs_shows_them(env, tmp_path, capsys):
    truth = make_archive(tmp_path / "videos", copies=1, seconds=3.0)
    out = tmp_path / "results.jsonl"
    argv = ["batch", str(tmp_path / "videos"), "-q", QUESTIONS[0], "--out", str(out), "--job", "cli-batch", "--json"]
    assert main(argv) == 1  # three broken files
    summary = json.loads(capsys.readouterr().out)
    assert (summary["done"], summary["failed"], summary["pending"]) == (3, 3, 0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["video"]: r["answer"] or r["error"]["type"] for r in rows} == truth

    assert main(argv) == 1  # the same command again: resumed, nothing left to do
    assert json.loads(capsys.readouterr().out)["skipped"] == 6
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows

    assert main(["jobs", "ls"]) == 0
    listing = capsys.readouterr().out
    assert any(line.startswith("cli-batch  batch  done  done 3  failed 3") for line in listing.splitlines())
    assert main(["jobs", "show", "cli-batch", "--failed"]) == 0
    shown = capsys.readouterr().out
    assert (
        "NotAVideoError" in shown and "CorruptVideoError" in shown and "6 videos, 6 questions in all" in shown
    )  # `jobs show`
    assert main(["jobs", "cancel", "cli-batch", "--json"]) == 0  # finished: stays done
    assert json.loads(capsys.readouterr().out)["status"] == "done"
    assert main(["jobs", "rm", "cli-batch"]) == 0
    capsys.readouterr()
    assert main(["jobs", "show", "cli-batch"]) == 2
    assert "no job 'cli-batch'" in capsys.readouterr().err


def test_keyframes_decodes_only_keyframes_with_their_timestamps(env, tmp_path, capsys):
    truth = make_archive(tmp_path / "videos", copies=1, seconds=4.0)  # a keyframe every 8 frames: each second
    clips = [v for v, c in truth.items() if not c.endswith("Error")]
    manifest = tmp_path / "clips.txt"
    manifest.write_text("\n".join(clips) + "\n")
    out = tmp_path / "skim.jsonl"
    assert main(["batch", str(manifest), "-q", QUESTIONS[0], "--keyframes", "--out", str(out), "--json"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["video"]: r["answer"] for r in rows} == {v: truth[v] for v in clips}
    for row in rows:  # one window of the 4 keyframes, at 0, 1, 2, 3 s
        assert row["spans"] == [[0.0, 3.0]], row


def test_batch_mistakes_are_one_line_before_ray_starts(env, no_ray, tmp_path, capsys):
    (tmp_path / "v.mp4").write_bytes(b"x")
    for argv, message in [
        (["batch", str(tmp_path)], "no question for"),
        (["batch", str(tmp_path / "none"), "-q", "Q?"], "is not a directory, a video, a glob or a manifest"),
        (["batch", str(tmp_path), "-q", "Q?", "--job", "a", "--resume", "b"], "name two jobs"),
        (["batch", str(tmp_path), "-q", "Q?", "--resume", "never-made"], "no such job"),
        (["batch", str(tmp_path), "--questions", str(tmp_path / "q.txt")], "questions file not found"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("heron: error: ") and message in err and err.count("\n") == 1, err
