"""Writes whose reply is lost after the server applied them: redis-py's retry sends them again, and
each must still land once (dialogue turns, stream counters, job counters). A real Redis behind
``ReplyLosingProxy``; the first test shows the fault does double a write that has no guard."""

from __future__ import annotations

import uuid

import pytest

from heron.state import DialogueStore, JobStore, RedisConnection
from heron.state.streams import StreamStore

from .lost_reply import ReplyLosingProxy

pytestmark = [pytest.mark.integration]


@pytest.fixture
def proxy(redis_url):
    proxy = ReplyLosingProxy(redis_url)
    yield proxy
    proxy.close()


@pytest.fixture
def db(proxy):
    connection = RedisConnection(proxy.url, namespace=f"heron-test-{uuid.uuid4().hex[:12]}")
    yield connection
    connection.clear_all()


def test_the_fault_doubles_an_unguarded_write(proxy, db):
    key = db.key("probe", "x")
    db.client.rpush(key, "before")  # connected before the fault is armed
    proxy.lose_reply_to(b"RPUSH")
    db.client.rpush(key, "once")
    assert proxy.lost == 1 and proxy.connections == 2  # the reply was lost and redis-py reconnected
    assert db.client.lrange(key, 0, -1) == [b"before", b"once", b"once"]


def test_a_dialogue_turn_lands_once_when_its_reply_is_lost(proxy, db):
    dialogue = DialogueStore(db)
    dialogue.append_turn("s", "user", "first")
    proxy.lose_reply_to(b"EVALSHA")
    dialogue.append_turns("s", [("user", "What colour is the square?", None), ("assistant", "red", {"spans": []})])
    assert proxy.lost == 1
    assert [t.text for t in dialogue.get_dialogue("s")] == ["first", "What colour is the square?", "red"]
    # a caller's own write id makes a whole repeated request land once too
    dialogue.append_turns("s", [("user", "again", None)], write_id="request-7")
    dialogue.append_turns("s", [("user", "again", None)], write_id="request-7")
    assert [t.text for t in dialogue.get_dialogue("s")][-2:] == ["red", "again"]


def test_stream_counters_count_once_when_the_reply_is_lost(proxy, db):
    streams = StreamStore(db)
    streams.register("cam", {"uri": "rtsp://127.0.0.1/cam"}, started_at=0.0)
    streams.add("cam", windows=1, frames=8)
    proxy.lose_reply_to(b"EVALSHA")
    streams.add("cam", windows=2, frames=16)
    assert proxy.lost == 1
    record = streams.get("cam")
    assert (record["windows"], record["frames"]) == (3, 24)


def test_job_counters_count_once_when_the_reply_is_lost(proxy, db):
    jobs = JobStore(db)
    job_id = jobs.create_job("batch")
    jobs.update_job(job_id, add={"done": 1})
    proxy.lose_reply_to(b"EVALSHA")
    job = jobs.update_job(job_id, progress=0.5, add={"done": 2, "failed": 1})
    assert proxy.lost == 1
    assert job.counters == {"done": 3, "failed": 1} and job.progress == 0.5
    assert jobs.get_job(job_id).counters == {"done": 3, "failed": 1}
