"""Talking to a running ``heron serve`` (``$HERON_URL`` / ``--server``): one request per question.

Errors come back as the service's JSON ``{"error": {"type", "message"}}`` and are raised as one
``RemoteError`` line, so ``heron ask`` prints and exits the same way whether it ran the pipeline
itself or asked a server.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from heron.errors import HeronError


class RemoteError(HeronError):
    """An error the Heron server answered with (or: the server could not be reached)."""

    def __init__(self, message: str, *, kind: str = "RemoteError", status: int | None = None):
        super().__init__(message)
        self.kind, self.status = kind, status


class HeronClient:
    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 600.0):
        self.url = url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("HERON_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HeronClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise RemoteError(
                f"cannot reach the Heron server at {self.url}: {error}; start it with `heron serve` "
                "or unset HERON_URL to run the pipeline here"
            ) from None
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise RemoteError(error["message"], kind=error.get("type", "RemoteError"), status=response.status_code)
            except (ValueError, KeyError, TypeError):
                raise RemoteError(
                    f"the Heron server at {self.url} answered HTTP {response.status_code}", status=response.status_code
                ) from None
        return response.json()

    def ask(self, source: str, question: str, **fields) -> dict:
        """POST /v1/ask; a local file the server may not read by path is uploaded first."""
        body = {"question": question, **{k: v for k, v in fields.items() if v is not None}}
        local = Path(source).expanduser()
        try:
            return self.request(
                "POST", "/v1/ask", json={"source": str(local.resolve()) if local.exists() else source, **body}
            )
        except RemoteError as error:
            if not (local.is_file() and error.kind == "NotAllowed"):
                raise
        source_id = self.upload(local)
        return self.request("POST", "/v1/ask", json={"source_id": source_id, **body})

    def upload(self, path: Path, *, wait_s: float = 3600.0) -> str:
        """Upload a video and wait for its ingest job; returns its source id."""
        with open(path, "rb") as body:
            added = self.request(
                "POST", "/v1/sources", content=body, headers={"Content-Type": "application/octet-stream"}
            )
        deadline = time.monotonic() + wait_s
        job = added["job"]
        while job["status"] not in ("done", "failed", "cancelled"):
            if time.monotonic() > deadline:
                raise RemoteError(f"the server did not finish ingesting {path} within {wait_s:g} s")
            time.sleep(0.2)
            job = self.request("GET", f"/v1/jobs/{job['id']}")
        if job["status"] != "done":
            raise RemoteError(job.get("error") or f"ingesting {path} {job['status']}", kind="IngestFailed")
        return added["source_id"]
