"""Liveness, readiness (a real script round trip), metrics, and durability warnings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from flashsale.api.app import create_app
from flashsale.runtime.redis_server import free_port
from flashsale.settings import Settings, load_settings
from flashsale.store.client import connect_single
from flashsale.store.durability import durability_warnings
from tests.helpers import ADMIN_TOKEN, metric
from tests.integration.conftest import CreateSale
from tests.servers import redis_server

Client = TestClient[Any, Any]


@pytest.fixture
async def client_without_redis(settings: Settings) -> AsyncIterator[Client]:
    dead = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with TestClient(TestServer(create_app(dead))) as test_client:
        yield test_client


async def test_healthz_and_readyz(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["redis_time_ms"] > 0


async def test_without_redis_alive_but_not_ready(client_without_redis: Client) -> None:
    assert (await client_without_redis.get("/healthz")).status == 200
    ready = await client_without_redis.get("/readyz")
    assert ready.status == 503
    assert ready.content_type == "application/problem+json"
    assert (await ready.json(content_type=None))["code"] == "overloaded"
    assert ready.headers["Retry-After"] == "1"


async def test_purchase_without_redis_is_503_with_retry_after(
    client_without_redis: Client,
) -> None:
    response = await client_without_redis.post(
        "/v1/sales/any/purchases", json={"user_id": "u1", "quantity": 1}
    )
    assert response.status == 503
    assert (await response.json(content_type=None))["code"] == "overloaded"
    assert int(response.headers["Retry-After"]) >= 1


async def test_metrics_count_outcomes_and_never_show_the_token(
    client: Client, create_sale: CreateSale
) -> None:
    sale = await create_sale(stock=1)
    before = await (await client.get("/metrics")).text()
    for user in ("m1", "m2"):
        await client.post(
            f"/v1/sales/{sale['sale_id']}/purchases", json={"user_id": user, "quantity": 1}
        )
    response = await client.get("/metrics")
    text = await response.text()
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert 'flashsale_purchase_attempts_total{outcome="ok"}' in text
    # The second attempt met this process's sold-out flag: counted there, not by Redis.
    name = "flashsale_sold_out_local_total"
    assert metric(text, name) - metric(before, name) == 1
    assert 'flashsale_script_seconds_count{script="purchase' in text  # or purchase_batch
    assert ADMIN_TOKEN not in text
    assert sale["sale_id"] not in text


async def test_durability_warnings_name_the_risky_settings(tmp_path: Path) -> None:
    with redis_server(tmp_path, "--maxmemory-policy", "allkeys-lru") as url:
        redis = connect_url(url)
        try:
            warnings = await durability_warnings(redis)
        finally:
            await redis.aclose()
    joined = " ".join(warnings)
    assert "appendonly" in joined
    assert "maxmemory-policy" in joined


async def test_durable_redis_gets_no_warning(tmp_path: Path) -> None:
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with redis_server(tmp_path, *durable) as url:
        redis = connect_url(url)
        try:
            assert await durability_warnings(redis) == []
        finally:
            await redis.aclose()


def connect_url(url: str) -> Redis:
    return connect_single(load_settings(env={}, overrides={"redis_url": url}))


async def test_unreachable_redis_is_a_warning_not_a_crash() -> None:
    redis = connect_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        warnings = await durability_warnings(redis)
    finally:
        await redis.aclose()
    assert len(warnings) == 1
    assert "not reachable" in warnings[0]


async def test_request_ids_are_echoed_or_made(client: Client) -> None:
    given = await client.get("/healthz", headers={"X-Request-Id": "frontend-123"})
    assert given.headers["X-Request-Id"] == "frontend-123"
    made = [(await client.get("/healthz")).headers["X-Request-Id"] for _ in range(2)]
    assert made[0] != made[1]
    assert all(made)
