"""Odd, damaged and impostor media (tests/faults/corpus.py, ~110 files): 0 crashes, 0 hangs, every
error typed and one line, every valid file answered, frames from every damaged file that still
holds a decodable keyframe — decoded directly, and asked through one warm Heron as a batch.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time

import pytest

from heron.config import DecodeConfig
from heron.errors import DecodeTimeoutError, HeronError, NotAVideoError, SourceUnreachableError
from heron.pipeline.decode import VideoDecoder

from .corpus import build_corpus

SLOWEST_S = 20.0  # no file of ~100 KB may take longer than this to decode or fail


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def _expected(file, outcome: str) -> bool:
    """outcome: "frames" or an error type name."""
    if file.kind == "valid" or file.expect_frames:
        return outcome == "frames"
    if file.kind == "impostor":
        return outcome == "NotAVideoError"
    return True  # damaged beyond its last keyframe: frames or a typed error are both right


def test_every_file_decodes_or_fails_with_a_typed_one_line_error(corpus):
    cfg = DecodeConfig(fps=8, window_frames=8, size=32)
    wrong, slowest = [], 0.0
    for file in corpus:
        clock = time.perf_counter()
        try:
            frames = sum(len(w.pts) for w in VideoDecoder(file.path, cfg))
            outcome = "frames" if frames else "no frames and no error"
        except HeronError as error:
            outcome = type(error).__name__
            if "\n" in str(error) or not str(error):
                wrong.append((file.name, f"message not one line: {error!r}"))
        except Exception as error:  # a crash: what this test exists to catch
            outcome = f"crash: {error!r}"
        slowest = max(slowest, time.perf_counter() - clock)
        if not _expected(file, outcome):
            wrong.append((file.name, file.kind, file.description, outcome))
    assert not wrong, "\n".join(map(str, wrong))
    assert slowest < SLOWEST_S
    assert sum(f.kind == "damaged" and f.expect_frames for f in corpus) >= 40  # the corpus is what it says


@pytest.mark.integration
def test_the_corpus_asked_through_one_warm_heron(corpus, ray_session, redis_url):
    import dataclasses

    from heron.config import load_pipeline_config
    from heron.pipeline.inputs import build_items
    from heron.service import Heron
    from heron.service.batch import BatchRun
    from heron.state import ResultStore

    cfg = load_pipeline_config("demo")
    cfg.ingest = dataclasses.replace(cfg.ingest, parallel_ingests=2)
    namespace = f"heron-corpus-{time.monotonic_ns()}"
    with Heron(cfg, redis_url=redis_url, progress=False, namespace=namespace) as heron:
        items = build_items([(str(f.path), [], None, None) for f in corpus], ["What color is the square?"])
        run = BatchRun(heron, items, job_id="corpus")
        finished = threading.Event()
        worker = threading.Thread(target=lambda: (run.run(), finished.set()), daemon=True)
        worker.start()
        worker.join(timeout=600)
        assert finished.is_set(), "the corpus batch did not finish within 600 s: a hang"
        rows = {r["video"]: r for r in ResultStore(heron.db).rows("corpus")}
        heron.db.clear_all()
    assert len(rows) == len(corpus)  # every file has its row: none crashed the batch (it would stay pending)
    wrong = []
    for file in corpus:
        row = rows[str(file.path)]
        outcome = "frames" if row["error"] is None else row["error"]["type"]
        if not _expected(file, outcome) or (row["error"] and "\n" in row["error"]["message"]):
            wrong.append((file.name, file.description, row["error"]))
        if row["error"] is None:
            assert row["answer"] is not None and row["spans"], row
    assert not wrong, "\n".join(map(str, wrong))


def test_a_named_pipe_is_refused_at_once_not_read_forever(tmp_path):
    fifo = tmp_path / "camera.mp4"
    os.mkfifo(fifo)
    with pytest.raises(NotAVideoError, match="is a named pipe, not a video file"):
        VideoDecoder(fifo)


def test_a_url_that_stops_sending_fails_typed_within_its_timeout(tmp_path, corpus):
    """A server that sends the header and part of the video, then stalls: a typed error in about
    decode.url_timeout_s, never a hang."""
    body = next(f for f in corpus if f.name == "valid_base_h264_aac_faststart.mp4").path.read_bytes()
    release = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            release.wait(30)  # then nothing more until the test ends

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/clip.mp4"
        clock = time.monotonic()
        decoder = VideoDecoder(url, DecodeConfig(fps=8, size=32, url_timeout_s=1.0))
        try:
            frames = sum(len(w.pts) for w in decoder)
        except (SourceUnreachableError, DecodeTimeoutError):
            frames = 0
        elapsed = time.monotonic() - clock
        assert elapsed < 15, f"took {elapsed:.1f} s"
        assert frames == 0 or decoder.stats.truncated_at is not None  # what came before the stall, flagged
    finally:
        release.set()
        server.shutdown()


def test_a_still_image_is_an_image_under_its_own_name_and_an_error_named_as_a_video(corpus, tmp_path):
    png = next(f for f in corpus if f.kind == "impostor" and "PNG" in f.description).path
    with pytest.raises(NotAVideoError, match="is a PNG image, not a video"):
        VideoDecoder(png)
    named = tmp_path / "still.png"
    named.write_bytes(png.read_bytes())
    windows = list(VideoDecoder(named, DecodeConfig(fps=1, window_frames=8, size=32)))
    assert len(windows) == 1 and len(windows[0].pts) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
