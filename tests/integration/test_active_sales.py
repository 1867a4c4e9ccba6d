"""Finished sales leave the worker's and the sweeper's loops: with 10,000 old sales in Redis
an idle pass costs what it costs with none, and a sale given work again comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.records import NewSale, SaleChange
from flashsale.settings import Settings
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.client import connect_single
from flashsale.store.outcomes import Reservation, Settled
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from flashsale.worker.worker import Worker
from tests.integration.test_order_queue import stored_states, worker_settings

pytestmark = pytest.mark.slow
OLD_SALES = 10_000


@dataclass
class Engine:
    redis: Redis
    store: SaleStore
    worker: Worker
    sink: OrderSink


@pytest.fixture
async def engine(private_redis: str, settings: Settings, tmp_path: Path) -> AsyncIterator[Engine]:
    own = settings.replace(redis_url=private_redis, redis_max_connections=200)
    redis = connect_single(own)
    scripts = Scripts.register(redis)
    sink = open_sink(f"sqlite:{tmp_path / 'orders.sqlite3'}", tmp_path)
    worker = Worker(redis, scripts, sink, worker_settings(own), Metrics())
    yield Engine(redis, SaleStore(redis, scripts, 3600), worker, sink)
    await sink.close()
    await redis.aclose()


def window(starts_in: float, ends_in: float, hold_seconds: int = 600) -> NewSale:
    now = int(time.time() * 1000)
    return NewSale(
        sku="SKU", name="old", stock=5, starts_at=now + int(starts_in * 1000),
        ends_at=now + int(ends_in * 1000), per_user_limit=5, hold_seconds=hold_seconds,
    )  # fmt: skip


async def commands_of(redis: Redis, work: object) -> dict[str, int]:
    """The commands Redis ran for `work` (a coroutine), by name, from its own statistics."""
    await redis.config_resetstat()
    assert asyncio.iscoroutine(work)
    await work
    stats = await redis.info("commandstats")
    bookkeeping = ("cmdstat_info", "cmdstat_config|resetstat")  # this function's own
    # A connection the pool happens to open meanwhile says hello; that is not the work.
    handshakes = ("cmdstat_hello", "cmdstat_client|", "cmdstat_ping", "cmdstat_select")
    return {
        k.removeprefix("cmdstat_"): int(v["calls"])
        for k, v in stats.items()
        if k not in bookkeeping and not k.startswith(handshakes)
    }


async def test_ten_thousand_finished_sales_cost_an_idle_pass_nothing(engine: Engine) -> None:
    store, worker = engine.store, engine.worker
    for chunk in range(0, OLD_SALES, 500):
        await asyncio.gather(
            *(
                store.create_sale(f"old-{i}", window(-7200, -3600))
                for i in range(chunk, chunk + 500)
            )
        )
    live = await store.create_sale("live", window(-60, 3600))
    assert not isinstance(live, Reservation)
    held = await store.purchase("live", "shopper", 1)
    assert isinstance(held, Reservation)

    before = await commands_of(engine.redis, worker.queue.pass_once())
    await worker.burst()  # stores the live sale's event, and retires the finished sales
    assert await engine.redis.scard(keys.ACTIVE_SALES) == 1
    after = await commands_of(engine.redis, worker.queue.pass_once())
    sweep = await commands_of(engine.redis, worker.sweeper.sweep_once())
    assert sum(before.values()) > 2 * OLD_SALES  # every old sale's stream, every pass
    assert sum(after.values()) <= 10, after  # the one live sale's reads, as with none old
    assert sum(sweep.values()) <= 10, sweep

    # The one sale in play is still served: its order is paid, and the order store hears it.
    assert await store.confirm(held.order_id) == Settled("confirmed", replayed=False)
    await worker.burst()
    assert await stored_states(engine.sink, "live") == {held.order_id: "confirmed"}


async def test_a_finished_sale_given_work_again_comes_back(engine: Engine) -> None:
    store, worker = engine.store, engine.worker
    await store.create_sale("reopened", window(-7200, -3600))
    await worker.burst()
    assert not await engine.redis.sismember(keys.ACTIVE_SALES, "reopened")

    far = int(time.time() * 1000) + 3_600_000
    patched = await store.patch_sale("reopened", SaleChange(ends_at=far))
    assert not isinstance(patched, Reservation)
    assert await engine.redis.sismember(keys.ACTIVE_SALES, "reopened")
    bought = await store.purchase("reopened", "late-shopper", 1)
    assert isinstance(bought, Reservation)
    await worker.burst()
    assert await stored_states(engine.sink, "reopened") == {bought.order_id: "reserved"}
    assert await engine.redis.sismember(keys.ACTIVE_SALES, "reopened")  # a hold is pending
