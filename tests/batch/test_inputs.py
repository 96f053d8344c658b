"""What a batch works on: directories, globs and manifests turned into (video, question) items."""

from __future__ import annotations

import json

import pytest

from heron.errors import ConfigError, EmptyQuestionError, SourceNotFoundError, TimeRangeError
from heron.pipeline.inputs import read_inputs, read_questions


@pytest.fixture
def archive(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/one.mp4", "a/two.MKV", "three.webm", "notes.txt.bak", "a/cover.jpg"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_a_directory_is_every_video_below_it_sorted_times_every_question(archive):
    items = read_inputs(str(archive), ["Q1?", "Q2?"])
    videos = [i.video for i in items]
    assert (
        videos
        == [str(archive / "a/one.mp4")] * 2 + [str(archive / "a/two.MKV")] * 2 + [str(archive / "three.webm")] * 2
    )
    assert [i.question for i in items[:2]] == ["Q1?", "Q2?"]
    assert [i.index for i in items] == list(range(6))


def test_a_glob_and_a_single_file(archive):
    assert [i.video for i in read_inputs(str(archive / "**/*.mp4"), ["Q?"])] == [str(archive / "a/one.mp4")]
    assert [i.video for i in read_inputs(str(archive / "three.webm"), ["Q?"])] == [str(archive / "three.webm")]


def test_a_text_manifest_resolves_paths_relative_to_itself_and_keeps_urls(archive):
    manifest = archive / "list.txt"
    manifest.write_text("# archive\na/one.mp4\n\nhttp://127.0.0.1:8000/clip.mp4\n")
    items = read_inputs(str(manifest), ["Q?"], start=1, end=3)
    assert [i.video for i in items] == [str(archive / "a/one.mp4"), "http://127.0.0.1:8000/clip.mp4"]
    assert {(i.start, i.end) for i in items} == {(1.0, 3.0)}


def test_a_csv_manifest_with_per_video_questions_and_ranges(archive):
    manifest = archive / "list.csv"
    manifest.write_text(
        "video,question,from,to\na/one.mp4,What colour?,0,2\na/one.mp4,What moves?,0,2\nthree.webm,,,\n"
    )
    items = read_inputs(str(manifest), ["Default?"])
    assert [(i.video.rsplit("/", 1)[-1], i.question, i.start, i.end) for i in items] == [
        ("one.mp4", "What colour?", 0.0, 2.0),
        ("one.mp4", "What moves?", 0.0, 2.0),
        ("three.webm", "Default?", None, None),
    ]


def test_a_jsonl_manifest(archive):
    manifest = archive / "list.jsonl"
    rows = [{"video": "a/one.mp4", "questions": ["A?", "B?"]}, {"path": "three.webm", "question": "C?", "to": 4}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = read_inputs(str(manifest))
    assert [(i.question, i.end) for i in items] == [("A?", None), ("B?", None), ("C?", 4.0)]


def test_mistakes_are_typed_errors_that_name_the_place(archive, tmp_path):
    with pytest.raises(SourceNotFoundError, match="no video files under"):
        read_inputs(str(_empty(tmp_path)), ["Q?"])
    with pytest.raises(SourceNotFoundError, match="matches no file"):
        read_inputs(str(archive / "*.avi"), ["Q?"])
    with pytest.raises(SourceNotFoundError, match="is not a directory, a video, a glob or a manifest"):
        read_inputs(str(archive / "nothing-here"), ["Q?"])
    with pytest.raises(EmptyQuestionError, match="no question for"):
        read_inputs(str(archive))
    bad = archive / "bad.csv"
    bad.write_text("file\none.mp4\n")
    with pytest.raises(ConfigError, match="must name a 'video'"):
        read_inputs(str(bad), ["Q?"])
    bad.write_text("video,from\na/one.mp4,soon\n")
    with pytest.raises(ConfigError, match=r"bad.csv:2: 'soon' is not a number"):
        read_inputs(str(bad), ["Q?"])
    bad.write_text("video\na/missing.mp4\n")
    with pytest.raises(SourceNotFoundError, match=r"bad.csv:2: video file not found"):
        read_inputs(str(bad), ["Q?"])
    broken = archive / "bad.jsonl"
    broken.write_text('{"video": "a/one.mp4"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: not a JSON object"):
        read_inputs(str(broken), ["Q?"])
    with pytest.raises(TimeRangeError):
        read_inputs(str(archive), ["Q?"], start=5, end=2)


def test_questions_file(tmp_path):
    file = tmp_path / "q.txt"
    file.write_text("# standing questions\nIs there a person?\n\nWhat colour is the car?\n")
    assert read_questions(str(file)) == ["Is there a person?", "What colour is the car?"]
    file.write_text("# nothing\n")
    with pytest.raises(EmptyQuestionError, match="holds no question"):
        read_questions(str(file))


def _empty(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no videos")
    return empty
