"""Every mistake a user can make on any command: one line naming it, exit 2, before Ray starts.

``--json`` turns the line into JSON on stdout. Each case runs the real command in-process; the
``no_ray`` fixture fails a case whose mistake is only noticed after Ray has started.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heron.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def files(tmp_path, video):
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "notes.mp4").write_text("just some text, not a video\n" * 50)
    (tmp_path / "bad.yaml").write_text("pipeline:\n  decode: {fps: -1}\n")
    (tmp_path / "typo.yaml").write_text("pipeline:\n  answr: {}\n")
    (tmp_path / "run.yaml").write_text("model: {}\ntrain: {output_dir: out, stages: []}\n")
    # The demo recipe with its backbones somewhere not built yet (a machine that ran `make
    # demo-model` has them under build/demo: `heron train` would then really train).
    recipe = Path("configs/demo.yaml").read_text().replace("build/demo/", f"{tmp_path}/build/demo/")
    (tmp_path / "demo.yaml").write_text(recipe)
    return {
        "video": video,
        "dir": str(tmp_path / "not-a-model"),
        "text": str(tmp_path / "notes.mp4"),
        "bad": str(tmp_path / "bad.yaml"),
        "typo": str(tmp_path / "typo.yaml"),
        "run": str(tmp_path / "run.yaml"),
        "recipe": str(tmp_path / "demo.yaml"),
        "tmp": str(tmp_path),
    }


MISUSE = [
    # (argv with {placeholders}, what the one line must say)
    (["ask", "{video}", "What?", "--model", "nosuch"], "no model, preset or model directory named 'nosuch'"),
    (["ask", "{video}", "What?", "--model", "{dir}"], "is not a Heron model directory"),
    (["ask", "{video}", "What?", "--config", "nosuch"], "no config file or preset named 'nosuch' (presets:"),
    (["ask", "{video}", "What?", "--config", "{dir}"], "is not a Heron model directory"),
    (["ask", "{video}", "What?", "--config", "{bad}"], "fps must be a positive number"),
    (["ask", "{video}", "What?", "--config", "{typo}"], "unknown key(s) in typo.yaml:pipeline: answr"),
    (["ask", "{tmp}/missing.mp4", "What?"], "video file not found"),
    (["ask", "{text}", "What?"], "is a text file, not a video"),
    (["ask", "ftp://host/clip.mp4", "What?"], "'ftp://' sources are not supported"),
    (["ask", "{video}", "   "], "the question is empty"),
    (["ask", "{video}", "What?", "--from", "9", "--to", "3"], "start (9 s) must be before end (3 s)"),
    (["ask", "{video}", "What?", "--from", "-1"], "must be a non-negative number of seconds"),
    (["ask", "{video}", "What?", "--from", "50", "--to", "60"], "no frames from 50 s on"),
    (["cache", "clear", "{tmp}/missing.mp4"], "video file not found"),
    (["cache", "ls", "--redis-url", "redis://127.0.0.1:1/0"], "cannot reach Redis at redis://127.0.0.1:1/0"),
    (["data", "synth", "--out", "{tmp}/d", "--n", "2", "--size", "95"], "size"),
    (["data", "synth", "--out", "{tmp}/d", "--n", "2", "--split", "holdout"], "split"),
    (["convert", "openflamingo", "{tmp}/nosuch.pt", "--out", "{tmp}/o"], "does not exist"),
    (["convert", "openflamingo", "openflamingo/NoSuch", "--out", "{tmp}/o"], "unknown OpenFlamingo model"),
    (["train", "{tmp}/nosuch.yaml"], "no training config"),
    (["train", "{run}"], "train.stages is empty"),
    (["train", "{recipe}", "--output-dir", "{tmp}/run"], "run `heron pretrain"),
    (["eval", "models/demo", "{tmp}/nodata"], "heron data synth"),
    (["eval", "{dir}", "{tmp}/nodata"], "no QA manifest"),
    (["eval", "models/demo", "{tmp}/nodata", "--ablate", "colour"], "unknown --ablate colour"),
    (["pretrain", "configs/tiny.yaml"], "has no 'train:' section"),
    (["demo-model", "--config", "{tmp}/nosuch.yaml"], "no training config"),
    (["serve", "--host", "0.0.0.0"], "needs an API key: set $HERON_API_KEY"),
    (["watch", "{video}", "--alert", "Is it there?"], "play it as a live stream with realtime"),
    (["watch", "gopher://cam/live", "--alert", "Is it there?"], "'gopher://' is not a live source"),
    (["watch", "{video}", "--realtime", "--alert", "  "], "the question is empty"),
    (["watch", "{video}", "--realtime", "--alert", "Q?", "--example", "maybe:{video}"], "--example"),
    (["ask", "rtsp://127.0.0.1:9/none", "What?"], "no live stream reads rtsp://127.0.0.1:9/none"),
    (["ask", "{video}", "What?", "--last", "30"], "no live stream reads"),
    (["serve", "--config", "nosuch"], "no config file or preset named 'nosuch'"),
]


def _fill(argv: list[str], files: dict) -> list[str]:
    return [arg.format(**files) for arg in argv]


@pytest.mark.parametrize("argv, says", MISUSE, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in enumerate(MISUSE)])
def test_a_mistake_is_one_line_and_exit_2_before_ray(argv, says, files, redis_url, monkeypatch, capsys, no_ray):
    monkeypatch.setenv("HERON_REDIS_URL", redis_url)
    monkeypatch.delenv("HERON_CONFIG", raising=False)
    monkeypatch.delenv("HERON_API_KEY", raising=False)
    code = main(_fill(argv, files))
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heron: error: ") and "Traceback" not in err, err
    assert says in lines[0], lines[0]


@pytest.mark.parametrize(
    "argv", [MISUSE[0][0], MISUSE[6][0], ["ask", "{video}"], ["ask", "{video}", "x", "--frm", "1"]]
)
def test_json_errors_are_json_on_stdout(argv, files, redis_url, monkeypatch, capsys, no_ray):
    monkeypatch.setenv("HERON_REDIS_URL", redis_url)
    assert main([*_fill(argv, files), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert set(error) == {"type", "message"} and error["message"]


@pytest.mark.parametrize(
    "argv",
    [
        ["ask"],
        ["ask", "a"],
        ["nosuch"],
        ["ask", "a", "b", "--frm", "1"],
        ["cache", "rm"],
        ["data", "synth"],
        ["convert", "caffe"],
        ["eval", "x"],
    ],
)
def test_usage_mistakes_exit_2_with_the_usage_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Usage: heron" in err and "Error" in err


COMMANDS = [
    [],
    ["ask"],
    ["cache"],
    ["cache", "ls"],
    ["cache", "clear"],
    ["data"],
    ["data", "synth"],
    ["convert"],
    ["convert", "openflamingo"],
    ["train"],
    ["eval"],
    ["pretrain"],
    ["demo-model"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "heron")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help_and_every_argument_is_explained(command, flag, capsys):
    assert main([*command, flag]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Usage: heron")
    for line in text.splitlines():  # every argument and option line carries words after its name
        stripped = line.strip()
        if stripped.startswith(("-", "{")) or (line.startswith("  ") and "<" in stripped.split(" ")[0:2][-1]):
            assert len(stripped.split()) >= 2, f"no help text: {line!r}"


def test_version(capsys):
    from heron import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"heron {__version__}"
