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

    def watch_streams(self, records) -> None:
        """Report each live stream's lag, frames/s, windows, reconnects and alerts at every scrape;
        ``records()`` gives the stream records (``LiveStreams.list``) and their alert counts."""
        self.registry.register(_StreamCollector(records))


class _StreamCollector:
    """Per-stream gauges, read from the stream records in Redis when Prometheus scrapes."""

    def __init__(self, records):
        self.records = records

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        lag = GaugeMetricFamily("heron_stream_lag_seconds", "seconds behind live", labels=["stream"])
        fps = GaugeMetricFamily("heron_stream_decode_fps", "frames decoded per second", labels=["stream"])
        windows = CounterMetricFamily("heron_stream_windows", "windows stored", labels=["stream"])
        reconnects = CounterMetricFamily("heron_stream_reconnects", "reconnects", labels=["stream"])
        alerts = CounterMetricFamily("heron_stream_alerts", "alerts raised", labels=["stream"])
        try:
            records = self.records()
        except Exception:  # Redis away: the scrape still answers with what it has
            records = []
        for record, alert_count in records:
            sid = record["id"]
            lag.add_metric([sid], record.get("lag_s", 0.0) or 0.0)
            fps.add_metric([sid], record.get("decode_fps", 0.0) or 0.0)
            windows.add_metric([sid], record.get("windows", 0))
            reconnects.add_metric([sid], record.get("reconnects", 0))
            alerts.add_metric([sid], alert_count)
        yield from (lag, fps, windows, reconnects, alerts)
