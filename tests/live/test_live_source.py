"""Live sources against real servers on loopback: RTSP (TCP, UDP), HTTP MPEG-TS, HLS, a file in real time.

Each test reads a few seconds of a real stream; the reconnect tests kill the server mid-stream.
"""

from __future__ import annotations

import threading
import time

import pytest

from heron.config import LiveConfig
from heron.errors import SourceNotFoundError, UnsupportedSourceError
from heron.pipeline.decode import FrameSampler
from heron.pipeline.live import LiveSource, live_spec

from .conftest import start_or_skip

pytestmark = pytest.mark.integration

FAST = LiveConfig(open_timeout_s=3, read_timeout_s=3, reconnect_initial_s=0.2, reconnect_max_s=1.0)


def _read(spec, *, seconds: float, fps: float = 4.0, cfg: LiveConfig = FAST, during=None):
    """Read ``spec`` for ``seconds`` of wall time; returns (times, gaps, reconnects, source)."""
    gaps, reconnects, times = [], [], []
    source = LiveSource(spec, cfg, size=32, on_gap=gaps.append, on_reconnect=reconnects.append)
    timer = threading.Timer(seconds, source.stop.set)
    timer.start()
    if during is not None:
        threading.Timer(during[0], during[1]).start()
    try:
        for frame, t in source.frames(FrameSampler(fps, None, None)):
            assert frame.shape[0] == 32 and frame.dtype.name == "uint8"
            times.append(t)
    finally:
        timer.cancel()
        source.stop.set()
    return times, gaps, reconnects, source


def _monotonic(times) -> bool:
    return all(b > a for a, b in zip(times, times[1:]))


def test_a_file_in_real_time_keeps_its_pace_and_its_times(appear_scene):
    started = time.monotonic()
    times, gaps, _, _ = _read(live_spec(str(appear_scene), realtime=True), seconds=30)
    took = time.monotonic() - started
    assert 11 < took < 20  # 12 s of video, played at its own speed
    assert times[0] == 0.0 and times[-1] == pytest.approx(11.75, abs=0.2) and _monotonic(times) and not gaps


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_over_tcp_and_udp(appear_scene, transport):
    from tools.live import servers

    with start_or_skip(lambda: servers.RtspServer(appear_scene, loop=True)) as server:
        cfg = LiveConfig(**{**FAST.__dict__, "rtsp_transport": transport})
        times, gaps, reconnects, _ = _read(live_spec(server.url), seconds=5, cfg=cfg)
    assert len(times) >= 8 and _monotonic(times) and not reconnects


def test_http_mpegts_and_hls(appear_scene):
    from tools.live import servers

    with start_or_skip(lambda: servers.HttpTsServer(appear_scene, loop=True)) as ts:
        times, _, _, _ = _read(live_spec(ts.url), seconds=4)
    assert len(times) >= 6 and _monotonic(times)
    with start_or_skip(lambda: servers.HlsServer(appear_scene)) as hls:
        times, _, _, _ = _read(live_spec(hls.url), seconds=5)
    assert len(times) >= 6 and _monotonic(times)


def test_a_killed_server_is_reconnected_and_the_gap_recorded(appear_scene):
    from tools.live import servers

    with start_or_skip(lambda: servers.RtspServer(appear_scene, loop=True)) as server:
        times, gaps, reconnects, source = _read(
            live_spec(server.url), seconds=12, during=(3.0, lambda: server.restart(down_s=2.0))
        )
    assert reconnects, "the source did not notice the server going away"
    assert gaps and gaps[0].end - gaps[0].start >= 1.5 and gaps[0].reason
    assert _monotonic(times) and times[-1] > gaps[0].end  # frames came again after the gap
    assert source.connections >= 2


def test_a_server_that_never_sends_does_not_hang_the_reader():
    from tools.live import servers

    with servers.StallServer("silent") as silent:
        started = time.monotonic()
        times, _, reconnects, source = _read(
            live_spec(silent.url_for("rtsp", "/live")),
            seconds=5,
            cfg=LiveConfig(**{**FAST.__dict__, "open_timeout_s": 1.0}),
        )
        took = time.monotonic() - started
    assert not times and took < 8  # each open gave up after 1 s and was retried, bounded


def test_what_cannot_be_a_live_source_is_a_typed_error(tmp_path, appear_scene):
    with pytest.raises(UnsupportedSourceError, match="realtime"):
        live_spec(str(appear_scene))
    with pytest.raises(SourceNotFoundError):
        live_spec(str(tmp_path / "nothing.mp4"), realtime=True)
    with pytest.raises(UnsupportedSourceError, match="gopher"):
        live_spec("gopher://camera/live")
    assert live_spec("rtsp://user:pw@cam/live").label == "rtsp://user:***@cam/live"
