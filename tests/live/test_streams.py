"""Live streams end to end: real servers, real Ray actors, a real Redis, the demo model watching.

A scene where a red square appears at a known time must raise one alert within two windows of
it, with the right span, once per appearance; a scene without it raises none. A stream actor
killed mid-stream is restarted by Ray and stores no window and sends no alert twice.
"""

from __future__ import annotations

import time

import pytest

from heron.config import load_pipeline_config
from heron.service import Heron

from .conftest import scene, start_or_skip

pytestmark = pytest.mark.integration

QUESTION = "Is there a red square at the end of the video?"  # the demo model's presence question
WINDOW_S = 2.0  # the demo config: 16 frames at 8 fps


@pytest.fixture(scope="module")
def heron(ray_session, redis_url):
    cfg = load_pipeline_config("demo")
    with Heron(cfg, redis_url=redis_url, progress=False, namespace=f"heron-live-{time.monotonic_ns()}") as service:
        service.warm_up()
        yield service
        service.db.clear_all()


def _wait_ended(heron, stream_ids, timeout_s=90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(heron.streams.status(s)["status"] in ("ended", "stopped", "failed") for s in stream_ids):
            return
        time.sleep(0.5)
    raise AssertionError(f"streams {stream_ids} did not end within {timeout_s} s")


def _watch(heron, watch_id="red"):
    return heron.streams.make_watch(QUESTION, watch_id=watch_id, cooldown_s=2.0)


def test_an_appearing_object_raises_one_alert_with_its_span_and_an_empty_scene_none(heron, appear_scene, empty_scene):
    from tools.live import servers

    with start_or_skip(lambda: servers.RtspServer(appear_scene, loop=False)) as camera:
        live = heron.streams.start(camera.url, stream_id="door", watches=[_watch(heron)])
        control = heron.streams.start(str(empty_scene), stream_id="control", realtime=True, watches=[_watch(heron)])
        deadline = time.monotonic() + 60
        while heron.streams.status(live)["windows"] < 6:  # the 12 s scene: six 2-s windows
            assert time.monotonic() < deadline, heron.streams.status(live)
            time.sleep(0.5)
        heron.streams.stop(live)
        _wait_ended(heron, [control])
    alerts = [a.data for a in heron.alerts.list_alerts(live)]
    opens = [a for a in alerts if a["kind"] == "open"]
    assert len(opens) == 1, alerts
    # the square is on screen from 4 s of scene time; RTSP time starts when the connection did
    status = heron.streams.status(live)
    assert status["windows"] >= 6  # (the server ends the file at 12 s, so a reconnect may follow)
    first_window = min(w for w in opens[0]["windows"])
    assert opens[0]["answer"] == "yes" and opens[0]["start_utc"].endswith("Z")
    closes = [a for a in alerts if a["kind"] == "close"]
    assert len(closes) <= 1 and (not closes or closes[0]["end"] - closes[0]["start"] <= 4 * WINDOW_S + 0.5)
    # within two windows of the appearance: the scene's 4 s is window 2 of the stream (or 3 with the join delay)
    assert first_window <= 4, opens
    assert heron.alerts.list_alerts(control) == []


def test_an_alert_on_a_file_played_in_real_time_is_exact(heron, appear_scene):
    stream = heron.streams.start(str(appear_scene), stream_id="exact", realtime=True, watches=[_watch(heron)])
    _wait_ended(heron, [stream])
    alerts = [a.data for a in heron.alerts.list_alerts(stream)]
    assert [(a["kind"], a["event"]) for a in alerts] == [("open", 1), ("close", 1)]
    assert alerts[0]["start"] == 4.0 and alerts[0]["windows"][0] == 2  # the window the square enters
    assert alerts[1]["end"] == pytest.approx(7.875)  # the last window it is in
    answer = heron.ask(stream, "What color is the square?", last_s=4)
    assert answer.answer.spans == [(8.0, 9.875), (10.0, 11.875)]  # the last 4 s of the stream
    at_end = heron.ask(stream, QUESTION, last_s=4)  # a moment question: the window at that moment
    assert at_end.answer.spans == [(10.0, 11.875)] and at_end.answer.text == "no"


def test_a_restarted_stream_actor_stores_no_window_and_sends_no_alert_twice(heron, tmp_path):
    import ray

    long_scene = scene(tmp_path / "twice.mp4", 20, [(4.0, 8.0), (14.0, 18.0)])
    stream = heron.streams.start(str(long_scene), stream_id="restart", realtime=True, watches=[_watch(heron)])
    time.sleep(11)
    actor = heron.streams._actors[stream]
    ray.kill(actor, no_restart=False)  # as a crash would: Ray restarts it with its constructor
    _wait_ended(heron, [stream], timeout_s=120)
    indices = sorted(heron.latents.cached_indices(stream))
    windows = heron.latents.window_spans(stream, 0, 1e9)
    starts = [t for _, t, _ in windows]
    assert indices == list(range(len(indices))) and len(indices) >= 9  # contiguous, once each
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    alerts = [(a.data["kind"], a.data["event"]) for a in heron.alerts.list_alerts(stream)]
    assert alerts.count(("open", 1)) == 1 and alerts.count(("open", 2)) == 1, alerts
    assert len(alerts) == len(set(alerts))


def test_streams_are_listed_with_status_and_unknown_ones_are_typed_errors(heron):
    from heron.errors import StreamNotFoundError

    listed = {s["id"]: s for s in heron.streams.list()}
    assert {"exact", "control"} <= set(listed) and listed["exact"]["status"] == "ended"
    assert listed["exact"]["watches"][0]["question"] == QUESTION
    with pytest.raises(StreamNotFoundError):
        heron.streams.status("nope")
    with pytest.raises(StreamNotFoundError):
        heron.ask("rtsp://127.0.0.1:9/none", "What?", last_s=10)
