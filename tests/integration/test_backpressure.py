"""When the order store falls behind, purchases go on up to a bound, then answer 503."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from flashsale.api.app import create_app
from flashsale.metrics import Metrics
from flashsale.settings import Settings
from flashsale.sinks import open_sink
from flashsale.store.scripts import Scripts
from flashsale.worker.worker import Worker
from tests.helpers import ADMIN, sale_body
from tests.polling import eventually

Client = TestClient[Any, Any]
BOUND = 5


@pytest.fixture
async def client_without_worker(settings: Settings) -> AsyncIterator[Client]:
    bounded = settings.replace(orders_max_backlog=BOUND, worker_in_process=False)
    async with TestClient(TestServer(create_app(bounded))) as test_client:
        yield test_client


async def buy(client: Client, sale_id: str, user: str) -> Any:
    return await client.post(
        f"/v1/sales/{sale_id}/purchases", json={"user_id": user, "quantity": 1}
    )


async def test_backlog_bound_then_drain(
    client_without_worker: Client, redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    client = client_without_worker
    body = sale_body(stock=50)
    assert (await client.post("/admin/sales", json=body, headers=ADMIN)).status == 201
    sale_id = body["sale_id"]
    orders = []
    for i in range(BOUND):
        response = await buy(client, sale_id, f"b{i}")
        assert response.status == 201
        orders.append((await response.json())["order_id"])

    refused = await buy(client, sale_id, "one-too-many")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert (await refused.json(content_type=None))["code"] == "overloaded"
    view = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    assert view["stock_left"] == 50 - BOUND  # the refused attempt took nothing
    assert view["counts"]["shed"] == 1
    # Finishing a purchase is shed last: confirm still goes through.
    assert (await client.post(f"/v1/orders/{orders[0]}/confirm")).status == 200

    sink = open_sink("", tmp_path)
    try:
        worker = Worker(redis, Scripts.register(redis), sink, settings, Metrics())
        await worker.burst()
    finally:
        await sink.close()
    assert (await buy(client, sale_id, "after-drain")).status == 201


async def test_no_hot_loop_while_the_store_is_down(
    store_down_settings: Settings, redis: Redis, client: Client
) -> None:
    body = sale_body(stock=50)
    assert (await client.post("/admin/sales", json=body, headers=ADMIN)).status == 201
    for i in range(3):
        assert (await buy(client, body["sale_id"], f"d{i}")).status == 201
    metrics = Metrics()
    sink = open_sink(store_down_settings.orders.dsn, Path("unused"))
    worker = Worker(redis, Scripts.register(redis), sink, store_down_settings, metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    started = time.monotonic()

    def failures() -> float:
        value = metrics.registry.get_sample_value(
            "flashsale_order_store_failures_total", {"kind": "unavailable"}
        )
        return value or 0.0

    # Let it fail and back off a few times.
    await eventually(lambda: failures() >= 5, within=10, what="the worker to try the store")
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.wait_for(task, 10)
    await sink.close()
    # Backoff doubles from 50 ms to a cap of 200 ms: five failures take at least ~0.35 s.
    # A hot loop would rack up thousands in that time.
    assert failures() < 5 + elapsed / 0.05


@pytest.fixture
def store_down_settings(settings: Settings, tmp_path: Path) -> Settings:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the order store's directory should be")
    return settings.replace(
        orders_dsn=f"sqlite:{blocker / 'orders.sqlite3'}",
        worker_backoff_max_seconds=0.2,
    )
