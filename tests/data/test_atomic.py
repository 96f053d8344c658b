"""atomic_path: the target appears whole when the block succeeds and is untouched when it fails."""

import pytest

from heron.data.atomic import atomic_path


def test_the_file_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "out.jsonl"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".jsonl" and tmp != target
        tmp.write_text("whole\n")
        assert not target.exists()
    assert target.read_text() == "whole\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]
