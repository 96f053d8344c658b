"""AlertStore against a real server: a Redis Stream per live stream."""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.integration


def test_alerts_are_listed_in_order_with_a_cursor(alerts):
    ids = [alerts.push_alert("cam-1", {"label": f"person {i}", "t": float(i)}) for i in range(3)]
    alerts.push_alert("cam-2", {"label": "car"})
    listed = alerts.list_alerts("cam-1")
    assert [a.alert_id for a in listed] == ids
    assert listed[1].data == {"label": "person 1", "t": 1.0} and listed[0].at > 0
    assert [a.data["label"] for a in alerts.list_alerts("cam-1", since=ids[0])] == ["person 1", "person 2"]
    assert alerts.list_alerts("cam-1", since=ids[-1]) == []
    assert [a.data["label"] for a in alerts.list_alerts("cam-2")] == ["car"]
    assert [a.data["label"] for a in alerts.last_alerts("cam-1", count=2)] == ["person 1", "person 2"]
    assert alerts.streams() == ["cam-1", "cam-2"]


def test_wait_returns_new_alerts_as_they_come_and_times_out_without(alerts):
    alerts.push_alert("cam-1", {"n": 0})
    started = time.monotonic()
    assert alerts.wait({"cam-1": "$"}, timeout_s=0.2) == []
    assert 0.15 < time.monotonic() - started < 5

    timer = threading.Timer(0.2, lambda: alerts.push_alert("cam-1", {"n": 1}))
    timer.start()
    try:
        got = alerts.wait({"cam-1": "$"}, timeout_s=10)
    finally:
        timer.join()
    assert [(a.stream_id, a.data) for a in got] == [("cam-1", {"n": 1})]


def test_old_alerts_are_trimmed(db):
    from heron.state import AlertStore

    small = AlertStore(db, maxlen=10)
    for i in range(500):
        small.push_alert("cam", {"n": i})
    kept = small.list_alerts("cam")
    assert len(kept) < 500 and kept[-1].data == {"n": 499}  # approximate trimming keeps the newest
