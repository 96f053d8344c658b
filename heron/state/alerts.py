"""Alerts in Redis: one Redis Stream per live stream (``alerts:{stream}``), trimmed to a bounded length.

An alert's id is its stream entry id (``1733059200000-0``): a cursor for polling (``since``) and
for blocking reads (``wait``), which is how ``heron alerts tail`` and SSE subscribers follow it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from heron.state.connection import FORMAT_VERSION, RedisConnection, redis_errors_translated

logger = logging.getLogger(__name__)

# KEYS: the alert stream, the idempotency key; ARGV: fmt, data, maxlen, ttl. Returns the id or false.
_PUSH_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) == false then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'fmt', ARGV[1], 'data', ARGV[2])
"""


@dataclass(frozen=True)
class Alert:
    """One alert raised on a live stream; ``alert_id`` is the Redis stream id (a cursor for polling)."""

    alert_id: str
    stream_id: str
    at: float  # unix time, seconds (from the stream id)
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.alert_id, "stream": self.stream_id, "at": self.at, **self.data}


class AlertStore:
    """Appends, lists and waits for the alerts of live streams.

    maxlen: alerts kept per stream (approximately; older ones are trimmed on write, O(1) amortised).
    """

    def __init__(self, db: RedisConnection, *, maxlen: int = 10_000):
        self.db = db
        self.maxlen = maxlen

    def _key(self, stream_id: str) -> str:
        return self.db.key("alerts", stream_id)

    @redis_errors_translated
    def push_alert(self, stream_id: str, alert: Mapping[str, Any]) -> str:
        """Append an alert (JSON-serialisable) to a live stream's alert log; returns its id."""
        entry = {"fmt": str(FORMAT_VERSION), "data": json.dumps(dict(alert))}
        alert_id = self.db.client.xadd(self._key(stream_id), entry, maxlen=self.maxlen, approximate=True)
        self.db.client.sadd(self.db.index_key("alert-streams"), stream_id)
        return alert_id.decode()

    @redis_errors_translated
    def push_alert_once(
        self, stream_id: str, key: str, alert: Mapping[str, Any], *, ttl_s: int = 30 * 86400
    ) -> str | None:
        """Append an alert unless one with this idempotency ``key`` was appended before (in ``ttl_s``).

        One Lua script (the guard and the stream share the stream's hash tag), so a stream actor
        that is restarted between deciding and recording an alert never records it twice.
        Returns the new alert id, or None when it was a repeat."""
        entry = json.dumps(dict(alert))
        alert_id = self.db.script("alert_once", _PUSH_ONCE)(
            keys=[self._key(stream_id), self.db.key("alerts", stream_id, "seen", key)],
            args=[str(FORMAT_VERSION), entry, self.maxlen, ttl_s],
        )
        if not alert_id:
            return None
        self.db.client.sadd(self.db.index_key("alert-streams"), stream_id)
        return alert_id.decode()

    @redis_errors_translated
    def list_alerts(self, stream_id: str, since: str | None = None, count: int | None = None) -> list[Alert]:
        """Alerts of a stream oldest first; only those after alert id ``since`` if given (a poll cursor)."""
        low = f"({since}" if since else "-"  # "(" makes the bound exclusive (Redis >= 6.2)
        entries = self.db.client.xrange(self._key(stream_id), min=low, count=count)
        return [alert for alert in (self._decode(stream_id, *entry) for entry in entries) if alert is not None]

    @redis_errors_translated
    def last_alerts(self, stream_id: str, count: int = 20) -> list[Alert]:
        """The newest ``count`` alerts of a stream, oldest first."""
        entries = self.db.client.xrevrange(self._key(stream_id), count=count)
        return [
            alert for alert in (self._decode(stream_id, *entry) for entry in reversed(entries)) if alert is not None
        ]

    @redis_errors_translated
    def wait(self, cursors: Mapping[str, str], *, timeout_s: float, count: int = 100) -> list[Alert]:
        """Alerts after each stream's cursor (``"$"``: only new ones), waiting up to ``timeout_s`` for one."""
        if not cursors:
            return []
        replies = self.db.client.xread(
            {self._key(s): c for s, c in cursors.items()}, count=count, block=max(1, int(timeout_s * 1000))
        )
        keys = {self._key(s): s for s in cursors}
        alerts = []
        for key, entries in replies or []:
            stream_id = keys[key.decode() if isinstance(key, bytes) else key]
            alerts += [a for a in (self._decode(stream_id, *entry) for entry in entries) if a is not None]
        return alerts

    # --- delivery (consumer groups: every alert is handed out until it is acknowledged) ----------

    @redis_errors_translated
    def pending(
        self, stream_id: str, group: str, consumer: str, *, new: bool, count: int = 50, block_s: float | None = None
    ) -> list[Alert]:
        """Alerts for ``group`` to deliver: ``new`` ones never handed out, else those handed to
        ``consumer`` but not acknowledged (after a crash: delivered again, at least once)."""
        key = self._key(stream_id)
        try:
            self.db.client.xgroup_create(key, group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        replies = self.db.client.xreadgroup(
            group,
            consumer,
            {key: ">" if new else "0"},
            count=count,
            block=None if block_s is None else max(1, int(block_s * 1000)),
        )
        alerts = []
        for _, entries in replies or []:
            alerts += [a for a in (self._decode(stream_id, *entry) for entry in entries if entry[1]) if a is not None]
        return alerts

    @redis_errors_translated
    def acknowledge(self, stream_id: str, group: str, alert_id: str) -> None:
        self.db.client.xack(self._key(stream_id), group, alert_id)

    @redis_errors_translated
    def count(self, stream_id: str) -> int:
        """Alerts a stream holds now (after trimming)."""
        return int(self.db.client.xlen(self._key(stream_id)))

    @redis_errors_translated
    def streams(self) -> list[str]:
        """Ids of the streams that have raised alerts, sorted."""
        return sorted(member.decode() for member in self.db.client.smembers(self.db.index_key("alert-streams")))

    def _decode(self, stream_id: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Alert | None:
        alert_id = entry_id.decode()
        try:
            data = json.loads(fields[b"data"])
        except (KeyError, ValueError):
            logger.warning("skipping unreadable alert %s of stream %s", alert_id, stream_id)
            return None
        return Alert(alert_id=alert_id, stream_id=stream_id, at=int(alert_id.split("-")[0]) / 1000.0, data=data)
