"""Prometheus metrics. Each app owns its registry, so several apps (tests, replicas in one process) never clash."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge("asr_queue_depth", "Segments waiting for the model", registry=self.registry)
        self.jobs = Gauge("asr_jobs", "Jobs in the store by status (all replicas)", ["status"], registry=self.registry)
        self.batch_size = Histogram(
            "asr_batch_size",
            "Segments per model call",
            buckets=(1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 32, 64),
            registry=self.registry,
        )
        self.requests = Counter(
            "asr_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.audio_seconds = Counter("asr_audio_seconds", "Seconds of audio received", registry=self.registry)
        self.inference_seconds = Histogram(
            "asr_inference_seconds",
            "Wall time of one model call",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.segments = Counter(
            "asr_segments", "Segments by outcome (ok, failed, timeout, dropped)", ["outcome"], registry=self.registry
        )
