"""Prometheus metrics, registered on a registry the caller owns (no hidden globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EXPOSITION_CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Every metric the service exports. Labels are bounded: no user, order or sale ids."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.purchase_attempts = Counter(
            "flashsale_purchase_attempts_total",
            "Purchase attempts answered, by outcome (ok or the problem code).",
            ["outcome"],
            registry=self.registry,
        )
        self.script_seconds = Histogram(
            "flashsale_script_seconds",
            "Time for one Lua script call to Redis, by script.",
            ["script"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "flashsale_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "flashsale_http_request_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_script(self, script: str, seconds: float) -> None:
        self.script_seconds.labels(script).observe(seconds)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
