"""`flashsale worker` and `flashsale audit`: the engine's background work, its checks and
the repair after a failover."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.runtime.loop import stop_event_on_signals
from flashsale.runtime.redis_location import located_redis
from flashsale.settings import Settings
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.active_sales import ActiveSales
from flashsale.store.client import connect
from flashsale.store.dead_letters import DeadLetters
from flashsale.store.scripts import Scripts
from flashsale.worker.audit import audit_sale, render
from flashsale.worker.repair import repair_sale
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
        redis = await connect(settings, url)
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


async def run_audit(settings: Settings, sale_id: str | None, *, repair: bool = False) -> bool:
    """Prints the report (after the repair, with `repair`); True when every invariant holds."""
    async with engine(settings) as parts:
        if sale_id is None:
            sale_ids = sorted(str(s) for s in await parts.redis.smembers(keys.SALES_INDEX))
        else:
            sale_ids = [sale_id]
        if repair:
            for s in sale_ids:
                print((await repair_sale(parts.redis, parts.scripts, parts.sink, s)).render())
        reports = [await audit_sale(parts.redis, parts.sink, s) for s in sale_ids]
    print(render(reports), flush=True)
    return all(not r.violations for r in reports)


DEAD_LETTER_LIST_LIMIT = 10_000


async def run_dead_letters(
    settings: Settings, action: str, sale_id: str | None, as_json: bool
) -> None:
    """`list` prints the dead letters; `replay` puts them back on their streams (the order
    worker then takes them again), and replaying twice changes nothing."""
    async with engine(settings) as parts:
        letters = DeadLetters(parts.redis, parts.scripts, ActiveSales(parts.redis, parts.scripts))
        if action == "replay":
            replayed = await letters.replay(sale_id)
            for r in replayed:
                print(f"replayed {r.sale_id} {r.dead_letter_id} as {r.entry_id}")
            print(f"flashsale dead-letters: replayed {len(replayed)} event(s)", flush=True)
            return
        found = await letters.newest(DEAD_LETTER_LIST_LIMIT, sale_id)
    if as_json:
        print(msgspec.json.encode(found).decode(), flush=True)
        return
    print(f"{'sale':<24} {'dead letter':<17} {'order':<32} {'tries':>5}  error")
    for d in found:
        order = d.event.get("order_id", "?")
        print(f"{d.sale_id[:24]:<24} {d.dead_letter_id:<17} {order[:32]:<32} "
              f"{d.deliveries:>5}  {d.error[:80]}")  # fmt: skip
    print(f"{len(found)} dead letter(s)", flush=True)
