"""A media reference in a request → something Heron can ingest, within the service's limits.

References: a ``data:video/...;base64,`` (or ``data:image/...``) upload, an http(s) URL (fetched
by the guarded fetcher), an rtsp URL (checked, then read live), or a local path (under the allowed
roots). Videos are probed before anything is decoded: too long or too large is a 413.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from heron.api.errors import NotAllowed, TooLarge
from heron.api.fetch import fetch, save_stream
from heron.api.security import SourcePolicy
from heron.config import ServeConfig
from heron.pipeline.decode import probe


class MediaResolver:
    def __init__(self, cfg: ServeConfig, upload_dir: Path):
        self.cfg, self.policy, self.upload_dir = cfg, SourcePolicy(cfg), upload_dir

    @property
    def upload_limit(self) -> int:
        return int(self.cfg.max_upload_mb * 1e6)

    def resolve(self, reference: str) -> str:
        """A local path (or a live URL) for ``reference``, checked against every limit."""
        text = reference.strip()
        if not text:
            raise NotAllowed("the media reference is empty; give a URL, a data: upload or a path")
        if text.startswith("data:"):
            path = self._data_uri(text)
        elif "://" in text:
            scheme = text.split("://", 1)[0].lower()
            if scheme in ("rtsp", "rtsps"):
                self.policy.check_url(text)  # live: read by the stream actor (docs/serve.md)
                return text
            path = fetch(text, self.policy, self.upload_dir) if scheme in ("http", "https") else None
            if path is None:
                self.policy.check_url(text)  # names the scheme that is not allowed
                raise NotAllowed(f"{scheme}:// URLs cannot be read")
        else:
            path = self.policy.local_path(text)
        self.check_video(str(path))
        return str(path)

    def save_upload(self, chunks, name: str = "upload") -> str:
        """Store an uploaded body (bytes chunks) and check it; returns its path."""
        path = save_stream(chunks, self.upload_dir, self.upload_limit, name)
        self.check_video(str(path))
        return str(path)

    def check_video(self, path: str) -> None:
        info = probe(path)
        if info.duration is not None and info.duration > self.cfg.max_video_s:
            raise TooLarge(f"the video is {info.duration:.0f} s long, beyond this service's {self.cfg.max_video_s:g} s")
        if max(info.width, info.height) > self.cfg.max_resolution:
            raise TooLarge(
                f"the video is {info.width}x{info.height}, beyond this service's {self.cfg.max_resolution} px"
            )

    def _data_uri(self, text: str) -> Path:
        header, _, payload = text.partition(",")
        media_type = header[5:].split(";")[0].lower()
        if not header.endswith(";base64") or not media_type.startswith(("video/", "image/")):
            raise NotAllowed("a data: URI must be data:video/<type>;base64,... or data:image/<type>;base64,...")
        if len(payload) * 3 // 4 > self.upload_limit:
            raise TooLarge(f"the upload is beyond the {self.cfg.max_upload_mb:g} MB limit")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise NotAllowed("the data: URI is not valid base64") from None
        suffix = "." + media_type.split("/")[1].split("+")[0][:5]
        return Path(save_stream([data], self.upload_dir, self.upload_limit, f"upload{suffix}"))


def default_upload_dir() -> Path:
    home = os.environ.get("HERON_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "heron") / "uploads"
