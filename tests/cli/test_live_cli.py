"""``heron watch``, ``heron alerts``, ``heron streams`` and ``heron ask --last`` as a user types them."""

from __future__ import annotations

import json

import pytest

from heron.cli import main
from tests.live.conftest import scene

pytestmark = pytest.mark.integration

QUESTION = "Is there a red square at the end of the video?"


def test_watch_prints_alerts_then_alerts_streams_and_ask_last_see_the_stream(
    ray_session, redis_url, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("HERON_REDIS_URL", redis_url)
    monkeypatch.delenv("HERON_CONFIG", raising=False)  # the demo model: it really answers
    clip = scene(tmp_path / "door.mp4", 8, [(2.0, 5.0)])
    assert (
        main(["watch", str(clip), "--realtime", "--alert", QUESTION, "--cooldown", "1", "--name", "door-cli", "--json"])
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["kind"], a["event"]) for a in lines] == [("open", 1), ("close", 1)]
    assert lines[0]["start"] == 2.0 and lines[0]["stream"] == "door-cli" and lines[0]["answer"] == "yes"

    assert main(["alerts", "ls", "door-cli"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and "ALERT" in listed[0] and QUESTION in listed[0]
    assert main(["streams", "ls"]) == 0
    assert any(line.startswith("door-cli ") and "ended" in line for line in capsys.readouterr().out.splitlines())
    # "at the end" over the last two windows (the first still shows the square): answered from the
    # window at that moment, the stream's newest (answer.moments)
    assert main(["ask", "door-cli", QUESTION, "--last", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "no" and out[1].startswith("  used: 6.0–7.9 s")  # the square left at 5 s
