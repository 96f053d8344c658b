"""Webhook delivery of alerts: at least once, retried with backoff, signed, with an idempotency key.

Alerts are read from each stream's Redis Stream through a consumer group (``webhooks``): an alert
stays pending until its POST succeeds (2xx) and is acknowledged, so a crash or a restart delivers
it again — at least once. Each POST carries ``Idempotency-Key: <stream>:<alert id>`` (receivers
drop repeats) and, when the watch has a secret, ``X-Heron-Signature: sha256=<HMAC of the body>``.
Failed POSTs are retried with exponential backoff (``max_attempts``), then left pending for the
next start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading

import httpx

from heron.errors import HeronError
from heron.state import AlertStore, StreamStore

log = logging.getLogger(__name__)

GROUP = "webhooks"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Heron-Signature`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDelivery:
    def __init__(
        self,
        alerts: AlertStore,
        streams: StreamStore,
        *,
        consumer: str = "heron",
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 10.0,
    ):
        self.alerts, self.streams, self.consumer = alerts, streams, consumer
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self._http = httpx.Client(timeout=timeout_s)
        self._stop = threading.Event()
        self.delivered = 0
        self._thread = threading.Thread(target=self._loop, name="heron-webhooks", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._http.close()

    def _loop(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                busy = False
                for stream_id in self.streams.ids():
                    hooks = {wid: w for wid, w in self.streams.watches(stream_id).items() if w.get("webhook")}
                    if not hooks:
                        continue
                    # after a start, what was handed out but never acknowledged goes first
                    for alert in self.alerts.pending(stream_id, GROUP, self.consumer, new=not first):
                        busy = True
                        self._deliver(stream_id, alert, hooks.get(alert.data.get("watch")))
                first = False
                if not busy:
                    self._stop.wait(0.5)
            except HeronError as error:  # Redis away: wait and try again
                log.warning("webhook delivery: %s", error)
                self._stop.wait(2.0)

    def _deliver(self, stream_id: str, alert, watch: dict | None) -> None:
        if watch is None:  # an alert of a watch without a webhook: nothing to send
            self.alerts.acknowledge(stream_id, GROUP, alert.alert_id)
            return
        body = json.dumps(alert.to_dict(), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": f"{stream_id}:{alert.alert_id}",
            "User-Agent": "heron-webhooks",
        }
        if watch.get("webhook_secret"):
            headers["X-Heron-Signature"] = signature(watch["webhook_secret"], body)
        for attempt in range(self.max_attempts):
            try:
                response = self._http.post(watch["webhook"], content=body, headers=headers)
                if response.is_success:
                    self.alerts.acknowledge(stream_id, GROUP, alert.alert_id)
                    self.delivered += 1
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__}: {error}"
            wait = self.backoff_s * 2**attempt
            log.warning("webhook %s for alert %s: %s; retry in %.1f s", watch["webhook"], alert.alert_id, reason, wait)
            if self._stop.wait(wait):
                return
        log.error(
            "webhook %s: alert %s not delivered after %d attempts; it stays pending",
            watch["webhook"],
            alert.alert_id,
            self.max_attempts,
        )

    def __enter__(self) -> WebhookDelivery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
