"""`flashsale worker` and `flashsale audit`: the engine's background work and its checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.runtime.loop import stop_event_on_signals
from flashsale.runtime.redis_location import located_redis
from flashsale.settings import Settings
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.client import connect
from flashsale.store.scripts import Scripts
from flashsale.worker.audit import audit_sale, render
from flashsale.worker.worker import Worker

log = logging.getLogger("flashsale.commands")


@dataclass
class Engine:
    redis: Redis
    scripts: Scripts
    sink: OrderSink


@asynccontextmanager
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with located_redis(settings) as url:
        redis = connect(settings, url)
        sink = open_sink(settings.orders.dsn, settings.data_dir)
        try:
            yield Engine(redis, Scripts.register(redis), sink)
        finally:
            await sink.close()
            await redis.aclose()


async def run_worker(settings: Settings, burst: bool) -> None:
    async with engine(settings) as parts:
        worker = Worker(parts.redis, parts.scripts, parts.sink, settings, Metrics())
        if burst:
            expired, handled = await worker.burst()
            print(f"flashsale worker: expired {expired} holds, stored {handled} events", flush=True)
            return
        stop = stop_event_on_signals()
        print(f"flashsale worker: writing orders to {parts.sink.description}", flush=True)
        await worker.run(stop)
        log.info("worker stopped; nothing it had read is left unacknowledged")


async def run_audit(settings: Settings, sale_id: str | None) -> bool:
    """Prints the report; returns True when every invariant holds."""
    async with engine(settings) as parts:
        if sale_id is None:
            sale_ids = sorted(str(s) for s in await parts.redis.smembers(keys.SALES_INDEX))
        else:
            sale_ids = [sale_id]
        reports = [await audit_sale(parts.redis, parts.sink, s) for s in sale_ids]
    print(render(reports), flush=True)
    return all(not r.violations for r in reports)
