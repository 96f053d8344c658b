"""The one Redis connection every store of Heron's state shares: client, key schema, errors, pickling.

Every key lives under ``{namespace}:v{FORMAT_VERSION}:`` (``heron:v2:`` by default); the schema is
in docs/state.md. Each key names the thing it belongs to inside a hash tag, ``{...}``
(``heron:v2:src:{<fingerprint>:<source>}:chunk:7``), so all keys of one source, session, job or
stream sit in one Redis Cluster slot and the transactions over them run unchanged on a cluster.

A change to any record's encoding bumps ``FORMAT_VERSION`` and with it the prefix, so data in an old
format is simply a cache miss (``clear_old_formats`` removes it).

The client retries a dropped connection with jittered exponential backoff for up to
``RETRY_WINDOW_S`` seconds (a Redis that restarts within that is picked up again, and the call
succeeds), then fails fast with ``StateUnavailableError``: a question asked while Redis is down
never hangs. A server that cannot write its data (disk full, an AOF or RDB write error: Redis's
``MISCONF``) refuses writes; that is a ``StateUnavailableError`` too, saying so in one line.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import AbstractBackoff, EqualJitterBackoff
from redis.retry import Retry

from heron.errors import StateStoreError, StateUnavailableError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # bump on any change of key layout or record encoding (see module docstring)

# How long one call keeps retrying a lost connection before StateUnavailableError (seconds). Rides
# over a restart of a local Redis or a container (about 0.1-2 s; measured: tests/faults/, figures in
# docs/state.md) yet keeps a question to a dead Redis to a few seconds.
RETRY_WINDOW_S = 3.0
WRITE_GUARD_TTL_S = 3600  # how long a write's once-only guard lives: far past any retry of it

P = ParamSpec("P")
R = TypeVar("R")


def redact_url(url: str) -> str:
    """``url`` with any password (``user:PASSWORD@`` or ``?password=``) replaced by ``***``, safe for
    logs and error messages. Works on malformed URLs too (it never parses the port)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        url = url.replace(f"//{parts.netloc}", f"//{userinfo.split(':', 1)[0]}:***@{host}", 1)
    if parts.query:
        query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


# The outermost retrying call's deadline (monotonic s), per thread and task: see RetryWithin.
_retry_deadline: ContextVar[float | None] = ContextVar("heron_redis_retry_deadline", default=None)


class RetryWithin(Retry):
    """redis-py's ``Retry``, bounded by time instead of by a count of attempts.

    redis-py nests its retries (a command's retry reconnects, and the reconnect retries too), so
    counts multiply; here the outermost call sets one deadline and the calls nested in it share it,
    so one operation gives up ``window_s`` seconds (plus one attempt) after it began. A refused
    password is not retried: waiting does not fix it.
    """

    def __init__(self, window_s: float, backoff: AbstractBackoff):
        super().__init__(backoff, retries=1_000_000)  # the deadline decides, not this count
        self.window_s = window_s

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        outer = _retry_deadline.get()
        token = _retry_deadline.set(time.monotonic() + self.window_s) if outer is None else None
        try:
            return self._until_deadline(do, fail, is_retryable, with_failure_count)
        finally:
            if token is not None:
                _retry_deadline.reset(token)

    def _until_deadline(self, do, fail, is_retryable, with_failure_count):
        self._backoff.reset()
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                pause = self._backoff.compute(failures)
                hopeless = isinstance(error, (redis.AuthenticationError, redis.exceptions.AuthorizationError))
                if hopeless or time.monotonic() + pause > (_retry_deadline.get() or 0.0):
                    raise error
                time.sleep(pause)


def client_from_url(
    url: str, *, connect_timeout_s: float = 2.0, timeout_s: float = 10.0, retry_window_s: float = RETRY_WINDOW_S
) -> redis.Redis:
    """A ``redis.Redis`` (bytes replies) that retries dropped connections for ``retry_window_s`` seconds.

    connect_timeout_s / timeout_s bound one connect / one reply (seconds): a server that hangs
    rather than refuses costs at most about ``timeout_s`` before the error.
    """
    retry = RetryWithin(retry_window_s, EqualJitterBackoff(base=0.05, cap=0.5))  # pauses 0.05-0.5 s
    try:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s,
            retry=retry,
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            health_check_interval=30,
        )
    except ValueError as error:  # a malformed URL (bad scheme, bad port)
        raise StateStoreError(f"invalid Redis URL {redact_url(url)!r}: {error}") from None


class RedisConnection:
    """One Redis database and one key namespace, shared by the stores of each kind of state.

    url: a ``redis://`` URL (a connection pickles as its URL, so stores travel to Ray actors).
    namespace: first key segment; tests use their own so they can never touch real data.
    """

    def __init__(self, url: str, *, namespace: str = "heron"):
        self.url = url
        self.where = redact_url(url)
        self.namespace = namespace
        self.prefix = f"{namespace}:v{FORMAT_VERSION}:"
        self.client = client_from_url(url)
        self._scripts: dict[str, Any] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        # A live socket cannot travel to another process; the URL can.
        return (functools.partial(RedisConnection, self.url, namespace=self.namespace), ())

    def __repr__(self) -> str:
        return f"RedisConnection({self.where!r}, namespace={self.namespace!r})"

    def key(self, kind: str, tag: str, *parts: str | int) -> str:
        """``{prefix}{kind}:{tag}[:part...]``: every key of one ``tag`` lands in one cluster slot."""
        return ":".join([f"{self.prefix}{kind}:{{{tag}}}", *(str(p) for p in parts)])

    def guard_key(self, kind: str, tag: str, write_id: str | None = None) -> str:
        """The once-only guard of one write to ``kind:{tag}`` (a fresh id unless given): a script
        that SETs it NX before writing applies a write once however often redis-py's retry sends
        it after a dropped reply (the guard expires after ``WRITE_GUARD_TTL_S``)."""
        return self.key(kind, tag, "w", write_id or uuid.uuid4().hex)

    def index_key(self, kind: str) -> str:
        """A namespace-wide index (a set or sorted set of ids): its own slot on a cluster."""
        return f"{self.prefix}{kind}"

    def script(self, name: str, source: str):
        """A Lua script registered once per connection (run atomically by the server)."""
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(source)
        return self._scripts[name]

    def ping(self) -> None:
        """Raise ``StateUnavailableError`` unless the server answers."""
        with translated(self, "ping"):
            self.client.ping()

    def clear_all(self) -> int:
        """Delete every key of this namespace, in every format version; returns keys deleted."""
        with translated(self, "clear_all"):
            return self._unlink_matching(f"{glob_escape(self.namespace)}:*", lambda key: True)

    def clear_old_formats(self) -> int:
        """Delete keys of this namespace written in other format versions; returns keys deleted."""
        current = self.prefix.encode()
        with translated(self, "clear_old_formats"):
            return self._unlink_matching(f"{glob_escape(self.namespace)}:v*", lambda key: not key.startswith(current))

    def _unlink_matching(self, pattern: str, wanted: Callable[[bytes], bool]) -> int:
        # SCAN, not KEYS: KEYS blocks the server for the whole keyspace walk.
        deleted, batch = 0, []
        for key in self.client.scan_iter(match=pattern, count=1000):
            if wanted(key):
                batch.append(key)
            if len(batch) >= 1000:
                deleted += self.client.unlink(*batch)
                batch = []
        if batch:
            deleted += self.client.unlink(*batch)
        return deleted


class translated:
    """``with translated(db, "op"):`` turns redis-py errors into Heron's, naming the server and operation."""

    def __init__(self, db: RedisConnection, operation: str):
        self.db, self.operation = db, operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, redis.RedisError):
            raise translate_error(error, self.db.where, self.operation) from error
        return False


def translate_error(error: redis.RedisError, where: str, operation: str) -> StateStoreError:
    """Heron's error for a redis-py one: one line naming the server (``where``, password hidden)
    and the operation. Conditions that pass (down, loading, disk full) are ``StateUnavailableError``."""
    text = _one_line(str(error))
    if isinstance(error, (redis.AuthenticationError, redis.exceptions.AuthorizationError)):  # before ConnectionError
        return StateStoreError(
            f"Redis at {where} refused Heron's credentials ({operation}: {text}); "
            "the URL must carry the server's password: redis://:PASSWORD@host:port/db"
        )
    if isinstance(error, redis.BusyLoadingError):
        return StateUnavailableError(f"Redis at {where} is still loading its data ({operation}); retry in a moment")
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
        return StateUnavailableError(f"Redis at {where} is not answering ({operation}: {text}); retry once it is back")
    if "MISCONF" in text:
        return StateUnavailableError(
            f"Redis at {where} cannot write its data to disk ({_misconf_reason(text)}), so it refuses "
            f"writes ({operation}); free space on its disk (its log says more), then retry"
        )
    if isinstance(error, redis.OutOfMemoryError):
        return StateUnavailableError(
            f"Redis at {where} is out of memory (maxmemory reached) and refuses writes ({operation}); "
            "free some (heron cache clear) or raise maxmemory"
        )
    if isinstance(error, redis.ReadOnlyError):
        return StateUnavailableError(f"Redis at {where} is a read-only replica ({operation}); retry after failover")
    return StateStoreError(f"Redis at {where} failed in {operation}: {text}")


def _misconf_reason(text: str) -> str:
    """What a ``MISCONF`` reply says went wrong, short (the RDB variant is a paragraph)."""
    reason = text[text.index("MISCONF") + len("MISCONF") :].strip()
    if "AOF" in reason:
        return reason.split(". ")[0].rstrip(".")  # "Errors writing to the AOF file: No space left on device"
    return "it cannot save its RDB snapshot" if "RDB" in reason else reason[:120]


def _one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters (pipeline errors quote their command's bytes)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def redis_errors_translated(method: Callable[P, R]) -> Callable[P, R]:
    """Method decorator for stores (which hold their connection as ``self.db``): see ``translated``."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated(args[0].db, method.__name__):
            return method(*args, **kwargs)

    return wrapper


def glob_escape(text: str) -> str:
    """``text`` with SCAN MATCH's glob characters escaped."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def decode_fields(record: dict[bytes, bytes]) -> dict[str, str]:
    """A hash read with bytes replies, as text."""
    return {name.decode(): value.decode() for name, value in record.items()}
