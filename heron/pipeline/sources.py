"""Video sources: turn what a user typed into a local file or an http(s) URL, and name its content.

``resolve_source`` decides what kind of source a string is and checks what can be checked without
decoding (the file exists and is a file). ``content_id`` gives a stable id of the source's content,
used as ``FrameBatch.source_id`` so the same video reached by two paths shares cached latents.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from heron.errors import NotAVideoError, SourceNotFoundError, UnsupportedSourceError

URL_SCHEMES = ("http", "https")

# content_id reads at most HEAD + TAIL + SAMPLES * SAMPLE bytes, so a 50 GB file hashes in
# milliseconds. Head and tail hold the container header and index (moov, Cues, idx1), which
# change whenever the media does; the middle samples catch edits that keep the index intact.
_HEAD_BYTES = 1 << 20  # 1 MiB
_TAIL_BYTES = 1 << 20  # 1 MiB
_MIDDLE_SAMPLES = 16
_SAMPLE_BYTES = 64 << 10  # 64 KiB
_WHOLE_FILE_BELOW = _HEAD_BYTES + _TAIL_BYTES + _MIDDLE_SAMPLES * _SAMPLE_BYTES  # 3 MiB


@dataclass(frozen=True)
class Source:
    """A resolved video source.

    uri:  absolute path for a local file, the URL as given for http(s).
    kind: "file" or "url".
    """

    uri: str
    kind: Literal["file", "url"]

    @property
    def is_url(self) -> bool:
        return self.kind == "url"

    @property
    def path(self) -> Path:
        """The local path (files only)."""
        if self.is_url:
            raise TypeError(f"{self.uri} is a URL, not a local file")
        return Path(self.uri)

    def __str__(self) -> str:
        return self.uri


def resolve_source(source: str | os.PathLike | Source) -> Source:
    """Classify ``source`` as a local file or an http(s) URL.

    ``file://`` URLs are local files. Raises SourceNotFoundError for a missing file,
    NotAVideoError for a directory, UnsupportedSourceError for any other URL scheme
    (rtsp, ftp, s3, ...), which this layer does not read.
    """
    if isinstance(source, Source):
        return source
    text = os.fsdecode(source)
    scheme = urlsplit(text).scheme.lower()
    # A one-letter "scheme" is a Windows drive ("C:\\videos\\a.mp4"), not a URL.
    if scheme in URL_SCHEMES:
        return Source(uri=text, kind="url")
    if scheme == "file":
        text = unquote(urlsplit(text).path)
    elif len(scheme) > 1:
        raise UnsupportedSourceError(
            f"{text}: '{scheme}://' sources are not supported; give a local file path or an http(s) URL"
        )
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceNotFoundError(f"video file not found: {path}")
    if path.is_dir():
        raise NotAVideoError(f"{path} is a directory, not a video file")
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):  # reading a pipe, socket or device can block forever
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise NotAVideoError(f"{path} is {kind}, not a video file (live devices: `heron watch`)")
    return Source(uri=str(path.resolve()), kind="file")


def content_id(source: str | os.PathLike | Source) -> str:
    """A stable 32-hex-digit id of the source's content (blake2b, 128 bits).

    Files: hash of the file size and a sample of its bytes: the whole file when it is under
    3 MiB, else the first 1 MiB, the last 1 MiB and 16 evenly spaced 64 KiB blocks. The path is
    not hashed, so a copy or a rename keeps the id. Two files that differ only in unsampled
    middle bytes get the same id: a deliberate trade for hashing huge files in milliseconds.
    URLs: hash of the URL string (nothing is downloaded), so a URL whose content changes keeps
    its id, and the same video at two URLs gets two ids.
    """
    resolved = resolve_source(source)
    digest = hashlib.blake2b(digest_size=16)
    if resolved.is_url:
        digest.update(b"url\0" + resolved.uri.encode())
        return digest.hexdigest()
    size = resolved.path.stat().st_size
    digest.update(b"file\0" + size.to_bytes(8, "little"))
    with open(resolved.path, "rb") as handle:
        for offset, length in _sampled_ranges(size):
            handle.seek(offset)
            digest.update(handle.read(length))
    return digest.hexdigest()


def _sampled_ranges(size: int) -> list[tuple[int, int]]:
    """(offset, length) byte ranges that content_id hashes, in file order."""
    if size < _WHOLE_FILE_BELOW:
        return [(0, size)]
    middle_start, middle_end = _HEAD_BYTES, size - _TAIL_BYTES - _SAMPLE_BYTES
    stride = (middle_end - middle_start) / max(_MIDDLE_SAMPLES - 1, 1)
    middle = [(middle_start + round(i * stride), _SAMPLE_BYTES) for i in range(_MIDDLE_SAMPLES)]
    return [(0, _HEAD_BYTES), *middle, (size - _TAIL_BYTES, _TAIL_BYTES)]


# Byte patterns that only occur in video containers: box/element ids of each family's header
# and index. Searched in a file's first and last MiB, so a file whose header is damaged, or
# that is cut short, is still recognised as a (corrupt) video rather than "not a video".
_CONTAINER_MARKERS = {
    "MP4/MOV": (b"ftyp", b"moov", b"mdat", b"moof", b"mvhd"),
    "Matroska/WebM": (
        b"\x1a\x45\xdf\xa3",
        b"\x18\x53\x80\x67",
        b"\x1f\x43\xb6\x75",
        b"\x16\x54\xae\x6b",
    ),
    "AVI": (b"AVI ", b"movi", b"idx1"),
    "Ogg": (b"OggS",),
    "FLV": (b"FLV\x01",),
}
_SNIFF_BYTES = 1 << 20  # 1 MiB from each end


def sniff_container(path: str | os.PathLike) -> str:
    """Guess what an unreadable file is from its bytes, for error messages.

    Returns "empty" (0 bytes), "text" (valid UTF-8 without NUL bytes), a container family
    such as "MP4/MOV" when its markers appear in the first or last MiB, or "unknown".
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "empty"
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
        handle.seek(max(size - _SNIFF_BYTES, len(head)))
        tail = handle.read()
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a multi-byte character cut by the 1 MiB read
                return "text"
    for family, markers in _CONTAINER_MARKERS.items():
        if any(marker in head or marker in tail for marker in markers):
            return family
    return "unknown"
