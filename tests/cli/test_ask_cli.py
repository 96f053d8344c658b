"""The `heron` command as a user types it: answers, JSON, sessions, cache, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heron.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def env(ray_session, redis_url, monkeypatch):
    monkeypatch.setenv("HERON_REDIS_URL", redis_url)
    monkeypatch.setenv("HERON_CONFIG", "tiny")  # fast; the default (the demo model) has a test of its own
    monkeypatch.delenv("HERON_MODEL", raising=False)


def test_ask_json_then_follow_up_then_cache(env, video, capsys):
    assert main(["ask", video, "What moves?", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["spans"] == [[0.0, 3.0], [4.0, 5.0]] and not first["ingest"]["cached"]
    assert main(["ask", video, "And after that?", "--session", first["session"]]) == 0
    out, err = capsys.readouterr()
    assert f"session: {first['session']}" in out and "from cache" in err
    assert main(["cache", "ls"]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if first["source_id"] in line)
    assert "complete" in row and row.endswith(str(Path(video).resolve()))  # which file it was
    assert main(["cache", "clear", video]) == 0
    assert main(["cache", "ls", "--json"]) == 0
    assert first["source_id"] not in capsys.readouterr().out


def _error(capsys, argv) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert err.startswith("heron: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_input_gives_one_line_and_exit_code_2(env, video, tmp_path, capsys):
    assert "video file not found" in _error(capsys, ["ask", str(tmp_path / "nope.mp4"), "What?"])
    assert "question is empty" in _error(capsys, ["ask", video, "  "])
    assert "start (9 s) must be before end (3 s)" in _error(capsys, ["ask", video, "What?", "--from", "9", "--to", "3"])
    text = tmp_path / "notes.mp4"
    text.write_text("just some text, not a video\n" * 50)
    assert "not a video" in _error(capsys, ["ask", str(text), "What?"])
    assert "cannot open http://127.0.0.1:9/clip.mp4" in _error(capsys, ["ask", "http://127.0.0.1:9/clip.mp4", "What?"])
    assert main(["ask", video, "What?"]) == 0  # caches the whole 6 s video
    capsys.readouterr()
    assert "the video is 6.0 s long" in _error(capsys, ["ask", video, "What?", "--from", "30", "--to", "40"])


def test_debug_shows_the_traceback(env, tmp_path):
    from heron.errors import SourceNotFoundError

    with pytest.raises(SourceNotFoundError):
        main(["ask", str(tmp_path / "nope.mp4"), "What?", "--debug"])


def test_demo_help_explains_and_does_nothing_else(tmp_path, monkeypatch, capsys):
    from heron.demo import main as demo_main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        demo_main(["--help"])
    assert exited.value.code == 0 and "usage: python -m heron.demo" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # no clip written, nothing started
    assert not (tmp_path / ".heron").exists()  # no clip made, no service started
