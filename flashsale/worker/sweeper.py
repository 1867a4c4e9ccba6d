"""Releases holds past their expiry: stock back, order expired, event appended, atomically."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.store.active_sales import ActiveSales
from flashsale.store.client import queued
from flashsale.store.scripts import Scripts

log = logging.getLogger("flashsale.sweeper")


class HoldSweeper:
    """Safe to run in several processes at once: each hold is judged inside one script."""

    def __init__(self, redis: Redis, scripts: Scripts, metrics: Metrics, batch_size: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._metrics = metrics
        self._batch_size = batch_size
        self._active = ActiveSales(redis, scripts)

    async def sweep_once(self) -> int:
        """Expires every hold due now, in every sale; returns how many."""
        total = 0
        while True:
            released, more = await self._sweep_batch()
            total += released
            if not more:
                return total

    async def _sweep_batch(self) -> tuple[int, bool]:
        sale_ids = await self._active.ids()
        if not sale_ids:
            return 0, False
        pipe = self._redis.pipeline(transaction=False)
        # The earliest holds of each sale: the due ones, if any, are among them.
        queued(
            *(
                pipe.zrange(keys.holds(sale_id), 0, self._batch_size - 1, withscores=True)
                for sale_id in sale_ids
            ),
        )
        earliest = await pipe.execute()
        # Which holds look due, by one node's clock (a cluster pipeline cannot carry TIME):
        # expire_holds.lua judges each candidate again by the clock of the node holding it.
        now = await self._scripts.probe()
        released, more = 0, False
        for sale_id, holds in zip(sale_ids, earliest, strict=True):
            due = [str(order_id) for order_id, expires_at in holds if expires_at <= now]
            if not due:
                continue
            released += await self._scripts.expire_holds(sale_id, due)
            more = more or len(due) == self._batch_size
        if released:
            self._metrics.holds_expired.inc(released)
            log.info("released %d expired holds", released)
        return released, more
