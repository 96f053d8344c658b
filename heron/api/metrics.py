"""Prometheus metrics of the service, in a registry of its own (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "heron_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "heron_request_seconds", "HTTP request latency by route", ["route", "method"], buckets=_LATENCY, registry=r
        )
        self.in_flight = Gauge("heron_requests_in_flight", "requests being served now", registry=r)
        self.rejected = Counter("heron_requests_rejected", "requests refused because the service was full", registry=r)
        self.ttft = Histogram(
            "heron_time_to_first_token_seconds", "streamed answers: request to first text", buckets=_LATENCY, registry=r
        )
        self.tokens = Counter("heron_generated_tokens", "tokens generated", registry=r)
        self.tokens_per_s = Histogram(
            "heron_generation_tokens_per_second",
            "tokens per second of each answer",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.ingest_frames = Counter("heron_ingest_frames", "frames decoded by ingests", registry=r)
        self.ingest_windows = Counter("heron_ingest_windows", "windows encoded by ingests", registry=r)
        self.ingest_frames_per_s = Gauge(
            "heron_ingest_frames_per_second", "decoded frames/s of the last ingest", registry=r
        )
        self.ingest_windows_per_s = Gauge(
            "heron_ingest_windows_per_second", "encoded windows/s of the last ingest", registry=r
        )
        self.cache = Counter(
            "heron_cache_lookups", "source lookups by result (hit: nothing decoded)", ["result"], registry=r
        )
        self.redis_errors = Counter("heron_redis_errors", "requests that failed on Redis", registry=r)
        self.queue_depth = Gauge("heron_answer_queue_depth", "questions waiting for the answer batcher", registry=r)

    def observe_ingest(self, report) -> None:
        """Count one IngestReport (cached or not)."""
        self.cache.labels("hit" if report.cached else "miss").inc()
        if not report.cached and report.seconds > 0:
            self.ingest_frames.inc(report.frames_decoded)
            self.ingest_windows.inc(report.windows_encoded)
            self.ingest_frames_per_s.set(report.frames_decoded / report.seconds)
            self.ingest_windows_per_s.set(report.windows_encoded / report.seconds)

    def observe_answer(self, answer) -> None:
        self.tokens.inc(answer.completion_tokens)
        if answer.seconds > 0 and answer.completion_tokens:
            self.tokens_per_s.observe(answer.completion_tokens / answer.seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
