"""RedisConnection: namespaces, pickling, errors that name the server and never its password."""

from __future__ import annotations

import pickle

import pytest
import redis

from heron.errors import StateStoreError, StateUnavailableError
from heron.state import DialogueStore, LatentStore, RedisConnection, redact_url

pytestmark = pytest.mark.integration


def test_clear_all_deletes_only_this_namespace(db, latents, dialogue, alerts, redis_url):
    from .test_latents import make_chunk

    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    dialogue.append_turn("s", "user", "hi")
    alerts.push_alert("cam", {"x": 1})
    foreign = redis.Redis.from_url(redis_url)
    foreign.set("not-heron:key", "keep")
    try:
        assert db.clear_all() >= 5
        assert latents.list_sources() == [] and dialogue.get_dialogue("s") == []
        assert foreign.get("not-heron:key") == b"keep"
    finally:
        foreign.delete("not-heron:key")


def test_stores_pickle_as_their_url(latents):
    from .test_latents import make_chunk

    latents.put_chunk(make_chunk("video-a", 0, 0.0, 1.0))
    copy = pickle.loads(pickle.dumps(latents))
    assert copy.fingerprint == latents.fingerprint and copy.db.prefix == latents.db.prefix
    assert copy.db.client is not latents.db.client
    assert copy.get_chunk("video-a", 0) is not None


def test_unreachable_server_fails_fast_naming_the_url_not_the_password():
    dead = RedisConnection("redis://:secret@127.0.0.1:1/0")
    with pytest.raises(StateUnavailableError, match=r"127\.0\.0\.1:1") as caught:
        LatentStore(dead, {"m": 1}).get_chunk("video-a", 0)
    assert "secret" not in str(caught.value)
    with pytest.raises(StateUnavailableError):
        DialogueStore(dead).get_dialogue("s")
    assert redact_url("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"


def test_a_malformed_url_is_a_typed_error():
    with pytest.raises(StateStoreError, match="invalid Redis URL"):
        RedisConnection("postgres://nowhere")
