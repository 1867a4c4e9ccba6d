"""Hands every sale's order events to the order store through a Redis consumer group.

At-least-once delivery, exactly-once effect: events are acknowledged (XACK) only after the
order store committed them, and the store applies them idempotently. Events a dead consumer
left pending are taken over with XAUTOCLAIM; an event that keeps failing goes to the sale's
dead-letter stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from flashsale import keys
from flashsale.errors import PoisonEventError, SinkUnavailableError
from flashsale.events import OrderEvent, parse_event
from flashsale.metrics import Metrics
from flashsale.sinks import OrderSink
from flashsale.store.active_sales import ActiveSales
from flashsale.store.client import queued
from flashsale.store.scripts import Scripts
from flashsale.worker.retry import Backoff
from flashsale.worker.store_health import StoreHealth

log = logging.getLogger("flashsale.order_queue")

GAUGE_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class QueueSettings:
    batch_size: int
    claim_idle_seconds: float
    max_deliveries: int
    backoff_max_seconds: float


@dataclass(frozen=True)
class Entry:
    sale_id: str
    entry_id: str
    fields: dict[str, str]
    reclaimed: bool


class OrderQueue:
    """One consumer of the order-store group; several may run at once, in any processes."""

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        sink: OrderSink,
        settings: QueueSettings,
        consumer: str,
        metrics: Metrics,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._sink = sink
        self._settings = settings
        self._consumer = consumer
        self._metrics = metrics
        self._gauges_at = 0.0
        self._health = StoreHealth(sink.description, metrics)
        self._active = ActiveSales(redis, scripts)

    async def pass_once(self, stop: asyncio.Event | None = None) -> int:
        """Reads what is waiting on every sale's stream, stores it, acknowledges it.

        Returns how many entries were handled. While the order store is unavailable it
        retries the same batch with backoff until it succeeds or `stop` is set; entries not
        stored stay pending, for this or another consumer to take over.
        """
        sale_ids = await self._active.ids()
        entries = await self._read(sale_ids)
        if entries:
            await self._handle(entries, stop)
        await self._observe_backlog(sale_ids)
        return len(entries)

    async def _read(self, sale_ids: Sequence[str]) -> list[Entry]:
        if not sale_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for sale_id in sale_ids:
            stream = keys.events(sale_id)
            queued(
                pipe.xautoclaim(
                    stream,
                    keys.ORDER_STORE_GROUP,
                    self._consumer,
                    min_idle_time=int(self._settings.claim_idle_seconds * 1000),
                    start_id="0-0",
                    count=self._settings.batch_size,
                ),
                pipe.xreadgroup(
                    keys.ORDER_STORE_GROUP,
                    self._consumer,
                    {stream: ">"},
                    count=self._settings.batch_size,
                ),
            )
        replies = await pipe.execute(raise_on_error=False)
        entries: list[Entry] = []
        for index, sale_id in enumerate(sale_ids):
            claimed, fresh = replies[2 * index], replies[2 * index + 1]
            if isinstance(claimed, redis_errors.ResponseError) or isinstance(
                fresh, redis_errors.ResponseError
            ):
                await self._ensure_group(
                    sale_id, claimed if isinstance(claimed, Exception) else fresh
                )
                continue
            for entry_id, fields in claimed[1]:
                if fields is not None:
                    entries.append(Entry(sale_id, str(entry_id), dict(fields), reclaimed=True))
            for _stream, stream_entries in fresh or []:
                for entry_id, fields in stream_entries:
                    entries.append(Entry(sale_id, str(entry_id), dict(fields), reclaimed=False))
        reclaimed = sum(entry.reclaimed for entry in entries)
        if reclaimed:
            self._metrics.events_reclaimed.inc(reclaimed)
            log.warning("took over %d events left pending by another consumer", reclaimed)
        return entries

    async def _ensure_group(self, sale_id: str, error: Exception) -> None:
        if "NOGROUP" not in str(error):
            raise error
        # A sale created before the group existed, or a stream deleted by hand.
        try:
            await self._redis.xgroup_create(
                keys.events(sale_id), keys.ORDER_STORE_GROUP, id="0", mkstream=True
            )
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _handle(self, entries: list[Entry], stop: asyncio.Event | None) -> None:
        events: list[tuple[Entry, OrderEvent]] = []
        for entry in entries:
            try:
                events.append((entry, parse_event(entry.entry_id, entry.fields)))
            except PoisonEventError as exc:
                # Malformed: no retry can help.
                await self._dead_letter(entry, str(exc), deliveries=1)
        stored = await self._store(events, stop)
        await self._acknowledge(stored)

    async def _store(
        self, events: list[tuple[Entry, OrderEvent]], stop: asyncio.Event | None
    ) -> list[Entry]:
        """Writes the events; returns the entries now safe to acknowledge."""
        if not events:
            return []
        try:
            await self._write_with_backoff([ev for _, ev in events], stop)
            return [entry for entry, _ in events]
        except SinkUnavailableError:
            return []  # stopping: leave them pending
        except Exception:
            self._metrics.sink_failures.labels("data").inc()
            log.exception("a batch of %d events failed; storing them one by one", len(events))
        done: list[Entry] = []
        for entry, event in events:
            if await self._store_alone(entry, event, stop):
                done.append(entry)
        return done

    async def _store_alone(
        self, entry: Entry, event: OrderEvent, stop: asyncio.Event | None
    ) -> bool:
        backoff = Backoff(self._settings.backoff_max_seconds)
        for attempt in range(1, self._settings.max_deliveries + 1):
            try:
                await self._write_with_backoff([event], stop)
                return True
            except SinkUnavailableError:
                return False
            except Exception as exc:
                self._metrics.sink_failures.labels("data").inc()
                if attempt == self._settings.max_deliveries:
                    await self._dead_letter(entry, f"{type(exc).__name__}: {exc}", attempt)
                    return False
                await backoff.wait(stop)
        return False

    async def _write_with_backoff(
        self, events: list[OrderEvent], stop: asyncio.Event | None
    ) -> None:
        backoff = Backoff(self._settings.backoff_max_seconds)
        while True:
            started = time.perf_counter()
            try:
                await self._sink.apply(events)
                self._metrics.sink_write_seconds.observe(time.perf_counter() - started)
            except SinkUnavailableError as exc:
                self._metrics.sink_failures.labels("unavailable").inc()
                self._health.down(exc)
                if stop is not None and stop.is_set():
                    raise
                await backoff.wait(stop)
            else:
                self._health.up()
                return

    async def _acknowledge(self, entries: list[Entry]) -> None:
        if not entries:
            return
        by_sale: dict[str, list[str]] = {}
        for entry in entries:
            by_sale.setdefault(entry.sale_id, []).append(entry.entry_id)
            self._metrics.events_applied.labels(entry.fields.get("type", "unknown")).inc()
        pipe = self._redis.pipeline(transaction=False)
        for sale_id, entry_ids in by_sale.items():
            queued(pipe.xack(keys.events(sale_id), keys.ORDER_STORE_GROUP, *entry_ids))
        await pipe.execute()
        for sale_id in by_sale:
            await self._scripts.trim_events(sale_id)

    async def _dead_letter(self, entry: Entry, error: str, deliveries: int) -> None:
        log.error("dead-lettering event %s of sale %s: %s", entry.entry_id, entry.sale_id, error)
        moved = await self._scripts.dead_letter(
            entry.sale_id, entry.entry_id, entry.fields, error[:1000], deliveries
        )
        if moved:
            self._metrics.events_dead_lettered.inc()

    async def _observe_backlog(self, sale_ids: Sequence[str]) -> None:
        now = time.monotonic()
        if now - self._gauges_at < GAUGE_INTERVAL_SECONDS or not sale_ids:
            return
        self._gauges_at = now
        pipe = self._redis.pipeline(transaction=False)
        for sale_id in sale_ids:
            queued(
                pipe.xlen(keys.events(sale_id)),
                pipe.xpending(keys.events(sale_id), keys.ORDER_STORE_GROUP),
            )
        replies = await pipe.execute(raise_on_error=False)
        lengths = replies[0::2]
        pendings = replies[1::2]
        self._metrics.stream_backlog.set(sum(n for n in lengths if isinstance(n, int)))
        self._metrics.stream_pending.set(
            sum(int(p["pending"]) for p in pendings if isinstance(p, dict))
        )
