"""The worker's watchdog sets the gauges the alert rules watch: Redis durable or not, dead
letters waiting, and what its periodic audit finds - on a Redis of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.settings import Settings
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.active_sales import ActiveSales
from flashsale.store.client import connect_single
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from flashsale.worker.watchdog import Watchdog
from flashsale.worker.worker import Worker
from tests.integration.test_lifecycle_scripts import reserve
from tests.integration.test_purchase_script import new_sale


@pytest.fixture
async def own_redis(private_redis: str, settings: Settings) -> AsyncIterator[Redis]:
    client = connect_single(settings.replace(redis_url=private_redis))
    yield client
    # Off again, so that the server stops at once (turned on at run time, the AOF is being
    # rewritten in the background, and a shutdown waits for it).
    await client.config_set("appendonly", "no")
    await client.aclose()


@pytest.fixture
async def orders(tmp_path: Path) -> AsyncIterator[OrderSink]:
    sink = open_sink(f"sqlite:{tmp_path / 'orders.sqlite3'}", tmp_path)
    yield sink
    await sink.close()


def gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


async def test_the_gauges_follow_redis_the_dead_letters_and_the_audit(
    own_redis: Redis, orders: OrderSink, settings: Settings
) -> None:
    scripts = Scripts.register(own_redis)
    store = SaleStore(own_redis, scripts, settings.purchases.idempotency_ttl_seconds)
    metrics = Metrics()
    watchdog = Watchdog(own_redis, orders, ActiveSales(own_redis, scripts), metrics, 3600.0)
    for name, value in (("appendonly", "yes"), ("appendfsync", "always"),
                        ("maxmemory-policy", "noeviction")):  # fmt: skip
        await own_redis.config_set(name, value)

    sale = await new_sale(store, stock=10, per_user_limit=1)
    for i in range(3):
        await reserve(store, sale.sale_id, f"u{i}")
    worker = Worker(own_redis, scripts, orders, settings, Metrics(), consumer="w")
    await worker.burst()  # the three orders are in the store: the audit is clean
    await watchdog.pass_once()
    assert gauge(metrics, "flashsale_redis_durable") == 1
    assert gauge(metrics, "flashsale_dead_letters") == 0
    assert gauge(metrics, "flashsale_audit_violations") == 0
    assert (gauge(metrics, "flashsale_audit_last_completed_timestamp_seconds") or 0) > 0

    await own_redis.config_set("appendfsync", "everysec")
    # An order event the store will never take, dead-lettered as the worker does it.
    await own_redis.xadd(keys.events(sale.sale_id), {"type": "reserved", "order_id": "garbled"})
    read: Any = await own_redis.xreadgroup(
        keys.ORDER_STORE_GROUP, "w", {keys.events(sale.sale_id): ">"}, count=1
    )
    [[_stream, [(entry_id, fields)]]] = read
    assert await scripts.dead_letter(sale.sale_id, entry_id, dict(fields), "garbled", 5)
    # A unit that appears from nowhere: stock_left + held + sold > stock_total.
    await own_redis.hincrby(keys.sale(sale.sale_id), "stock_left", 1)
    await watchdog.pass_once()
    assert gauge(metrics, "flashsale_redis_durable") == 0
    assert gauge(metrics, "flashsale_dead_letters") == 1
    assert gauge(metrics, "flashsale_audit_violations") == 0  # not due yet: hourly here
    assert await watchdog.audit() >= 1
    assert (gauge(metrics, "flashsale_audit_violations") or 0) >= 1
