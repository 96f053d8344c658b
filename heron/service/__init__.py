"""Orchestration over the actors: ask / ingest (``Heron``); watch (live streams) and batch (archives)."""

from heron.service.heron import Heron
from heron.service.reports import AskResult, IngestReport

__all__ = ["AskResult", "Heron", "IngestReport"]
