"""The figures the shipped alert rules watch (deploy/prometheus/alerts.yml) that no request
moves: whether Redis persists as the engine needs, how many order events wait in the
dead-letter streams, and what a periodic audit of the active sales finds."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.sinks import OrderSink
from flashsale.store.active_sales import ActiveSales
from flashsale.store.client import queued
from flashsale.store.durability import durability_warnings
from flashsale.worker.audit import audit_sale

log = logging.getLogger("flashsale.watchdog")


class Watchdog:
    def __init__(
        self,
        redis: Redis,
        sink: OrderSink,
        active: ActiveSales,
        metrics: Metrics,
        audit_interval_seconds: float,
    ) -> None:
        self._redis = redis
        self._sink = sink
        self._active = active
        self._metrics = metrics
        self._audit_interval = audit_interval_seconds
        self._audited_at: float | None = None
        self._warnings: list[str] | None = None

    async def pass_once(self) -> int:
        """One look at each; returns 0 (nothing to hurry for: the loop waits its interval)."""
        await self._check_durability()
        await self._count_dead_letters()
        now = time.monotonic()
        due = self._audited_at is None or now - self._audited_at >= self._audit_interval
        if self._audit_interval > 0 and due:
            self._audited_at = now
            await self.audit()
        return 0

    async def _check_durability(self) -> None:
        warnings = await durability_warnings(self._redis, quiet=True)
        if warnings != self._warnings:
            for warning in warnings:
                log.warning("Redis durability: %s", warning)
            if not warnings and self._warnings:
                log.info("Redis durability: every setting is as the engine needs again")
            self._warnings = warnings
        self._metrics.redis_durable.set(0 if warnings else 1)

    async def _count_dead_letters(self) -> None:
        sale_ids = [str(s) for s in await self._redis.smembers(keys.SALES_INDEX)]
        if not sale_ids:
            self._metrics.dead_letters.set(0)
            return
        pipe = self._redis.pipeline(transaction=False)
        queued(*(pipe.xlen(keys.dead_letters(sale_id)) for sale_id in sale_ids))
        self._metrics.dead_letters.set(sum(int(n) for n in await pipe.execute()))

    async def audit(self) -> int:
        """The active sales' invariants, as `flashsale audit` checks them; the violations
        found (logged each, and the gauge)."""
        found = 0
        for sale_id in await self._active.ids():
            report = await audit_sale(self._redis, self._sink, sale_id)
            for violation in report.violations:
                log.error("periodic audit: sale %s: %s", sale_id, violation)
            found += len(report.violations)
        self._metrics.audit_violations.set(found)
        self._metrics.audit_completed.set(time.time())
        return found
