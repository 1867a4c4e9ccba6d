"""Prometheus metrics, registered on a registry the caller owns (no hidden globals)."""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EXPOSITION_CONTENT_TYPE = CONTENT_TYPE_LATEST
# A gauge only the order worker's process sets (serve runs the worker in one of its
# processes): the value it set last, not the 0 the other processes hold for it.
WORKER_SETS: Final = "livemostrecent"


class Metrics:
    """Every metric the service exports. Labels are bounded: no user, order or sale ids."""

    def __init__(
        self, registry: CollectorRegistry | None = None, multiprocess_dir: str | None = None
    ) -> None:
        """`multiprocess_dir`: this process is one of several serving the same port; metrics
        are written there (prometheus-client's multiprocess mode) and /metrics sums them."""
        self.registry = registry or CollectorRegistry()
        self._multiprocess_dir = multiprocess_dir
        self.purchase_attempts = Counter(
            "flashsale_purchase_attempts_total",
            "Purchase attempts Redis answered, by outcome (ok, pending or the problem code); "
            "those answered sold_out from the process's flag are flashsale_sold_out_local_total.",
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

        self.events_applied = Counter(
            "flashsale_order_events_applied_total",
            "Order events written to the order store and acknowledged, by event type.",
            ["type"],
            registry=self.registry,
        )
        self.events_dead_lettered = Counter(
            "flashsale_order_events_dead_lettered_total",
            "Order events moved to a dead-letter stream after failing too often.",
            registry=self.registry,
        )
        self.events_reclaimed = Counter(
            "flashsale_order_events_reclaimed_total",
            "Order events taken over from a consumer that left them pending too long.",
            registry=self.registry,
        )
        self.sink_failures = Counter(
            "flashsale_order_store_failures_total",
            "Failed attempts to write to the order store, by kind (unavailable or data).",
            ["kind"],
            registry=self.registry,
        )
        self.order_store_up = Gauge(
            "flashsale_order_store_up",
            "1 while the order store takes writes, 0 while the worker waits out an outage.",
            registry=self.registry,
            multiprocess_mode=WORKER_SETS,
        )
        self.sink_write_seconds = Histogram(
            "flashsale_order_store_write_seconds",
            "Time to write one batch of events to the order store.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stream_backlog = Gauge(
            "flashsale_order_stream_backlog",
            "Events in the sale streams not yet acknowledged by the order store (all sales).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.stream_pending = Gauge(
            "flashsale_order_stream_pending",
            "Events delivered to a worker but not yet acknowledged (all sales).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.stock_rebalanced = Counter(
            "flashsale_stock_rebalanced_total",
            "Units moved between the buckets of sales of several shards.",
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "flashsale_dead_letters",
            "Order events in the dead-letter streams now (all sales): each waits for a fix "
            "and `flashsale dead-letters replay`.",
            registry=self.registry,
            multiprocess_mode=WORKER_SETS,
        )
        self.redis_durable = Gauge(
            "flashsale_redis_durable",
            "1 when every Redis node persists as the engine needs (appendonly yes, appendfsync "
            "always, noeviction), 0 when a setting can lose acknowledged orders or is unknown.",
            registry=self.registry,
            multiprocess_mode=WORKER_SETS,
        )
        self.audit_violations = Gauge(
            "flashsale_audit_violations",
            "Invariant violations the worker's last periodic audit found (all active sales).",
            registry=self.registry,
            multiprocess_mode=WORKER_SETS,
        )
        self.audit_completed = Gauge(
            "flashsale_audit_last_completed_timestamp_seconds",
            "When the worker's periodic audit last ran to the end (Unix time).",
            registry=self.registry,
            multiprocess_mode=WORKER_SETS,
        )
        self.holds_expired = Counter(
            "flashsale_holds_expired_total",
            "Holds the sweeper released because they passed their expiry.",
            registry=self.registry,
        )

        self.shed = Counter(
            "flashsale_shed_total",
            "Requests answered 429/503 without doing their work, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.sold_out_local = Counter(
            "flashsale_sold_out_local_total",
            "Purchase attempts answered sold_out from the process's flag, without Redis.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "flashsale_purchase_batch_size",
            "Purchase attempts per script call to Redis.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "flashsale_requests_in_flight",
            "Requests the process is working on.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.in_flight_limit = Gauge(
            "flashsale_in_flight_limit",
            "The in-flight bound in force (adaptive: it follows latency).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.breaker_state = Gauge(
            "flashsale_redis_breaker_state",
            "The Redis circuit breaker: 0 closed, 1 half-open, 2 open.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        # Looking a labelled child up costs more than using it: keep the ones in use.
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._attempt_children: dict[str, Any] = {}
        self._shed_children: dict[str, Any] = {}

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.http_requests.labels(*key),
                self.http_seconds.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def count_shed(self, reason: str) -> None:
        child = self._shed_children.get(reason)
        if child is None:
            child = self._shed_children[reason] = self.shed.labels(reason)
        child.inc()

    def count_attempt(self, outcome: str) -> None:
        child = self._attempt_children.get(outcome)
        if child is None:
            child = self._attempt_children[outcome] = self.purchase_attempts.labels(outcome)
        child.inc()

    def observe_script(self, script: str, seconds: float) -> None:
        self.script_seconds.labels(script).observe(seconds)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self._every_process()))

    def families(self) -> list[Metric]:
        """Every metric as /metrics shows it: summed over the processes serving the port."""
        return list(self._every_process().collect())

    def _every_process(self) -> CollectorRegistry:
        if self._multiprocess_dir is None:
            return self.registry
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return merged
