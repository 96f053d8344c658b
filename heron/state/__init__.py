"""Heron's state in Redis, one module per kind: window latents, dialogue, jobs, alerts.

All stores share one ``RedisConnection`` (client, key schema, error translation, pickling);
``server`` finds or starts the Redis itself. Never imports ray, the pipeline or model code.

    db = RedisConnection(ensure_redis())
    latents = LatentStore(db, encoder_settings)     # window latents + their codec
    DialogueStore(db), JobStore(db), AlertStore(db)
"""

from heron.state.alerts import Alert, AlertStore
from heron.state.connection import FORMAT_VERSION, RedisConnection, redact_url
from heron.state.dialogue import DialogueStore, Turn
from heron.state.jobs import JOB_STATUSES, Job, JobStore
from heron.state.latents import LatentStore, SourceInfo, settings_fingerprint
from heron.state.results import ResultStore
from heron.state.server import ThrowawayRedis, ensure_redis
from heron.state.streams import StreamStore

__all__ = [
    "FORMAT_VERSION",
    "JOB_STATUSES",
    "Alert",
    "AlertStore",
    "DialogueStore",
    "Job",
    "JobStore",
    "LatentStore",
    "RedisConnection",
    "ResultStore",
    "SourceInfo",
    "StreamStore",
    "ThrowawayRedis",
    "Turn",
    "ensure_redis",
    "redact_url",
    "settings_fingerprint",
]
