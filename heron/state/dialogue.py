"""Dialogue in Redis: the turns of each session, oldest first (``session:{id}``, a list of JSON)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from heron.state.connection import FORMAT_VERSION, RedisConnection, redis_errors_translated

logger = logging.getLogger(__name__)


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
    def append_turns(self, session_id: str, turns: list[tuple[str, str, Mapping[str, Any] | None]]) -> list[Turn]:
        """Append (role, text, meta) turns in one command, so a question and its answer land together."""
        now = time.time()
        made = [Turn(role=role, text=text, meta=dict(meta or {}), at=now) for role, text, meta in turns]
        records = [
            json.dumps({"fmt": FORMAT_VERSION, "role": t.role, "text": t.text, "meta": t.meta, "at": t.at})
            for t in made
        ]
        if records:
            self.db.client.rpush(self._key(session_id), *records)
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
