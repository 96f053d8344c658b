"""README.md as a new user runs it: every ``sh`` and ``python`` block not marked ``skip: <reason>``.

The blocks run in order, in a scratch directory that sees the repository's ``models/`` and
``configs/`` (as a clone's root does), against the installed ``heron`` command. They share the
test session's Redis and Ray (``HERON_REDIS_URL``, ``RAY_ADDRESS``) so that each ``heron`` joins a
running Ray instead of starting one: the whole file stays under a minute on 2 cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
RUNNABLE = ("sh", "python")
BLOCK_TIMEOUT_S = 90  # one block; the longest (the asks, batch) take ~15 s here
TOTAL_BUDGET_S = 120  # all of them: ~45 s on the project's 2-core machine when it is not shared
# Words a block's output must show: the README promises them (answers of the demo model included).
EXPECTED = {
    '"What shape is the green object?"': ["triangle", "session: s1"],
    "heron --version": ["heron "],
    "make_questions(scene, rng)": ["(true: "],
    "heron batch": ["6 answered, 0 failed"],
    "heron eval": ["overall"],
}
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    line: int  # where its fence opens in README.md (1-based)
    language: str
    info: str  # the whole info string after the fence, e.g. "sh skip: runs until Ctrl-C"
    code: str

    @property
    def skipped(self) -> bool:
        words = self.info.split()
        return len(words) > 1 and words[1].rstrip(":") == "skip"

    @property
    def skip_reason(self) -> str:
        return self.info.split("skip", 1)[1].lstrip(":").strip() if self.skipped else ""


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` (only lines that are exactly ``` close a block)."""
    blocks = []
    for match in _FENCE.finditer(text):
        info = match.group(1).strip()
        language = info.split(maxsplit=1)[0] if info else ""
        blocks.append(Block(text.count("\n", 0, match.start()) + 1, language, info, match.group(2)))
    return blocks


def runnable(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.language in RUNNABLE and not b.skipped]


def test_parser_reads_fences_and_skip_reasons():
    text = "x\n```sh\nheron --version\n```\n\n```sh skip: runs until Ctrl-C\nheron serve\n```\n```text\nout\n```\n"
    blocks = readme_blocks(text)
    assert [(b.line, b.language, b.skipped, b.skip_reason) for b in blocks] == [
        (2, "sh", False, ""),
        (6, "sh", True, "runs until Ctrl-C"),
        (9, "text", False, ""),
    ]
    assert [b.code for b in runnable(blocks)] == ["heron --version\n"]


def test_readme_blocks_are_marked_and_the_quick_start_is_the_ci_command():
    blocks = readme_blocks(README.read_text())
    for block in blocks:
        assert block.language, f"README.md:{block.line}: a block needs a language (sh, python, text, ...)"
        if block.skipped:
            assert block.skip_reason, f"README.md:{block.line}: `skip` needs a reason: ```{block.language} skip: why"
    quick_start = next(b for b in blocks if "make test" in b.code)
    assert "make demo" in quick_start.code
    assert "make test" in (REPO / ".ci" / "run").read_text()  # CI runs the README's test command
    commands = " ".join(b.code for b in runnable(blocks))
    for command in ("heron ask", "heron cache", "heron batch", "heron eval", "load_model("):
        assert command in commands, f"no runnable README block shows {command}"


@pytest.fixture
def workdir(tmp_path):
    """A scratch directory laid out like a clone's root (models/ and configs/ are the repository's)."""
    for name in ("models", "configs"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def _env(workdir: Path, redis_url: str, ray_address: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERON_", "RAY_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HERON_HOME=str(workdir / "home"),  # nothing lands in the user's ~/.cache/heron
        HERON_REDIS_URL=redis_url,
        RAY_ADDRESS=ray_address,
        RAY_AUTH_MODE="disabled",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def _run(block: Block, workdir: Path, env: dict[str, str]) -> str:
    if block.language == "sh":
        command = ["bash", "-e", "-u", "-o", "pipefail", "-c", block.code]
    else:
        command = [sys.executable, "-c", block.code]
    try:
        done = subprocess.run(
            command,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md:{block.line}: still running after {BLOCK_TIMEOUT_S} s:\n{block.code}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"README.md:{block.line} exited {done.returncode}:\n{block.code}\n{output[-3000:]}"
    assert "Traceback" not in output, f"README.md:{block.line} printed a traceback:\n{output[-3000:]}"
    return output


@pytest.mark.integration
@pytest.mark.slow
def test_readme_commands_run_as_written(workdir, redis_url, ray_session):
    env = _env(workdir, redis_url, ray_session.get_runtime_context().gcs_address)
    blocks = runnable(readme_blocks(README.read_text()))
    started = time.perf_counter()
    for block in blocks:
        output = _run(block, workdir, env)
        for marker, words in EXPECTED.items():
            if marker in block.code:
                for word in words:
                    assert word in output, f"README.md:{block.line}: expected {word!r} in its output:\n{output[-3000:]}"
    took = time.perf_counter() - started
    assert took < TOTAL_BUDGET_S, f"the README's blocks took {took:.0f} s (budget {TOTAL_BUDGET_S} s)"
