"""Typed errors for every mistake a caller can make.

Each error says what was wrong, with the numbers that matter, and what to do. The CLI prints
``str(error)`` as a one-line message and exits non-zero; tracebacks only with ``--debug``.
Model code raises these instead of ``assert`` so misuse is caught in production too.
"""

from __future__ import annotations


class HeronError(Exception):
    """Base class of every error Heron raises on purpose."""

    exit_code = 2


# --- configuration and loading -------------------------------------------------------------


class ConfigError(HeronError, ValueError):
    """A config file or value is invalid (unknown key, wrong type, missing field)."""


class UnsupportedArchitectureError(ConfigError):
    """The language model's architecture is not in Heron's decoder-layer lookup table."""


class StageMismatchError(ConfigError):
    """A finished training stage on disk was trained under another config than the one given."""


class CheckpointMismatchError(HeronError):
    """Weights on disk do not fit the model: lists missing, unexpected and mis-shaped keys."""

    def __init__(self, source: str, *, missing=(), unexpected=(), mismatched=()):
        self.source, self.missing = source, list(missing)
        self.unexpected, self.mismatched = list(unexpected), list(mismatched)
        parts = []
        if self.missing:
            parts.append(f"missing {len(self.missing)}: {', '.join(self.missing[:20])}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)}: {', '.join(self.unexpected[:20])}")
        if self.mismatched:
            shown = ", ".join(f"{k} (file {a} vs model {b})" for k, a, b in self.mismatched[:20])
            parts.append(f"shape mismatch {len(self.mismatched)}: {shown}")
        super().__init__(f"weights in {source} do not match the model: " + "; ".join(parts))


# --- model inputs ------------------------------------------------------------------------------


class MediaCountMismatchError(HeronError, ValueError):
    """The prompt has a different number of <image> markers than media items were given."""

    def __init__(self, markers: int, media: int, *, row: int | None = None):
        self.markers, self.media, self.row = markers, media, row
        where = f" in prompt {row}" if row is not None else ""
        super().__init__(
            f"prompt{where} has {markers} <image> marker(s) but {media} media item(s) were given; "
            "put one <image> where each media item belongs"
        )


class FrameFormatError(HeronError, ValueError):
    """Frames have the wrong dtype, rank or channel count."""


class PromptTooLongError(HeronError, ValueError):
    """A prompt (plus the tokens to generate) does not fit the language model's context."""

    def __init__(self, tokens: int, limit: int, *, max_new_tokens: int = 0):
        self.tokens, self.limit, self.max_new_tokens = tokens, limit, max_new_tokens
        extra = f" + {max_new_tokens} new tokens" if max_new_tokens else ""
        super().__init__(
            f"prompt is {tokens} tokens{extra}, more than the language model's context of {limit}; "
            "shorten the prompt, use fewer media items or lower max_new_tokens"
        )


# --- video sources -------------------------------------------------------------------------------


class SourceError(HeronError):
    """A video source could not be used (base class of the decoding errors)."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A local file does not exist."""


class SourceUnreachableError(SourceError):
    """A URL could not be opened (DNS, connection, HTTP status)."""


class NotAVideoError(SourceError):
    """The file is not a media container FFmpeg understands, or has no video stream."""


class UnsupportedCodecError(SourceError):
    """The video stream's codec cannot be decoded by the decoders Heron has."""


class CorruptVideoError(SourceError):
    """The video is truncated or corrupt so badly that no frame decoded."""


class EmptyVideoError(SourceError):
    """The video (or the requested time range) has zero frames."""


class DecodeTimeoutError(SourceError, TimeoutError):
    """Decoding produced no frame for ``decode.stall_timeout_s`` seconds (a stalled or spinning demuxer)."""


class ResolutionError(SourceError):
    """The video's resolution is absurd (zero, or beyond the configured limit)."""


class TimeRangeError(HeronError, ValueError):
    """--from/--to are invalid (negative, or start after end)."""


# --- questions and state ------------------------------------------------------------------------


class EmptyQuestionError(HeronError, ValueError):
    """The question is empty or only whitespace."""


class StateStoreError(HeronError):
    """Redis could not be reached or holds data Heron cannot read."""


class StateUnavailableError(StateStoreError):
    """Redis did not answer (down, restarting, unreachable): retry once it is back (HTTP 503)."""


class IngestTimeoutError(HeronError, TimeoutError):
    """An ingest waited longer than pipeline.ingest.call_timeout_s for the actors (full cluster, stuck decoder)."""


class ActorStartTimeoutError(HeronError, TimeoutError):
    """An actor did not start in time (a cluster without room for it, or a model that loads too slowly)."""


class ClusterResourcesError(ConfigError):
    """An actor asks for more CPUs or GPUs than the whole Ray cluster has: Ray would wait forever."""


class UnsupportedSourceError(SourceError, ValueError):
    """The source is neither a local file nor an http(s) URL (e.g. an ftp:// or s3:// address)."""


class StreamNotFoundError(HeronError, LookupError):
    """No live stream with that id (or URL) is known."""


class JobNotFoundError(HeronError, LookupError):
    """No job with that id is known (it was removed, or never created)."""
