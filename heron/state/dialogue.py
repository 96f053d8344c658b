"""Dialogue in Redis: the turns of each session, oldest first.

session:{id}            list of JSON turns
session:{id}:w:{write}  a guard per append (expires): a write that redis-py retries after a
                        dropped reply, which the server had applied, is not appended twice
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from heron.state.connection import FORMAT_VERSION, WRITE_GUARD_TTL_S, RedisConnection, redis_errors_translated

logger = logging.getLogger(__name__)

# KEYS: the session, the write's guard; ARGV: guard ttl (s), turn, turn, ... Returns 1, or 0 for a repeat.
_APPEND_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) == false then return 0 end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
return 1
"""


@dataclass(frozen=True)
class Turn:
    """One dialogue turn."""

    role: str  # "user", "assistant", "system", ...
    text: str
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. the time spans an answer used
    at: float = 0.0  # unix time, seconds


class DialogueStore:
    """Appends and reads the turns of dialogue sessions."""

    def __init__(self, db: RedisConnection):
        self.db = db

    def _key(self, session_id: str) -> str:
        return self.db.key("session", session_id)

    @redis_errors_translated
    def append_turn(self, session_id: str, role: str, text: str, meta: Mapping[str, Any] | None = None) -> Turn:
        """Append a turn to a session's dialogue (meta must be JSON-serialisable)."""
        return self.append_turns(session_id, [(role, text, meta)])[0]

    @redis_errors_translated
    def append_turns(
        self,
        session_id: str,
        turns: list[tuple[str, str, Mapping[str, Any] | None]],
        *,
        write_id: str | None = None,
    ) -> list[Turn]:
        """Append (role, text, meta) turns in one script, so a question and its answer land together.

        The append happens once per ``write_id`` (default: a fresh one per call), however often
        the connection's retry sends it: a caller that retries a whole request may pass its own."""
        now = time.time()
        made = [Turn(role=role, text=text, meta=dict(meta or {}), at=now) for role, text, meta in turns]
        records = [
            json.dumps({"fmt": FORMAT_VERSION, "role": t.role, "text": t.text, "meta": t.meta, "at": t.at})
            for t in made
        ]
        if records:
            guard = self.db.guard_key("session", session_id, write_id)
            self.db.script("dialogue_append", _APPEND_ONCE)(
                keys=[self._key(session_id), guard], args=[WRITE_GUARD_TTL_S, *records]
            )
        return made

    @redis_errors_translated
    def get_dialogue(self, session_id: str, last_n: int | None = None) -> list[Turn]:
        """A session's turns, oldest first; only the newest ``last_n`` if given."""
        if last_n is not None and last_n < 0:
            raise ValueError(f"last_n must be >= 0, got {last_n}")
        if last_n == 0:
            return []
        raw = self.db.client.lrange(self._key(session_id), -last_n if last_n else 0, -1)
        turns = []
        for item in raw:
            try:
                record = json.loads(item)
                turns.append(
                    Turn(
                        role=str(record["role"]),
                        text=str(record["text"]),
                        meta=dict(record.get("meta") or {}),
                        at=float(record.get("at", 0.0)),
                    )
                )
            except (ValueError, KeyError, TypeError):
                logger.warning("skipping unreadable turn in session %s: %r", session_id, item[:80])
        return turns

    @redis_errors_translated
    def clear_session(self, session_id: str) -> bool:
        """Forget a session's dialogue; False if there was none."""
        return bool(self.db.client.unlink(self._key(session_id)))
