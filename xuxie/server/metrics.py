"""The Prometheus metrics of one app (``GET /metrics``)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize", "/detokenize", "/health", "/metrics", "/")


class Metrics:
    """Prometheus counters of one app (its own registry, so several apps in one process do not mix)."""

    def __init__(self, served: dict[str, Any]):
        """``served``: model name -> what serves it (its ``worker`` gives the queue depth and active rows)."""
        self.registry = r = CollectorRegistry()
        self.requests = Counter("xuxie_requests", "Requests answered, by route and status", ["route", "status"], registry=r)
        self.prompt_tokens = Counter("xuxie_prompt_tokens", "Prompt tokens read", ["model"], registry=r)
        self.generated_tokens = Counter("xuxie_generated_tokens", "Tokens generated", ["model"], registry=r)
        self.latency = Histogram("xuxie_request_latency_seconds", "Seconds from request to its last token", ["model"],
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=r)
        self.first_token = Histogram("xuxie_time_to_first_token_seconds", "Seconds from a streamed request to its first text", ["model"],
                                     buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        queue = Gauge("xuxie_queue_depth", "Requests waiting for free rows", ["model"], registry=r)
        active = Gauge("xuxie_active_sequences", "Sequences being decoded", ["model"], registry=r)
        self.count = lambda path, status: self.requests.labels(path if path in ROUTES else "other", str(status)).inc()
        for name, s in served.items():
            queue.labels(name).set_function(lambda w=s.worker: w.queued)
            active.labels(name).set_function(lambda w=s.worker: w.active_rows)
