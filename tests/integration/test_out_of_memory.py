"""A Redis out of memory (maxmemory, noeviction) refuses writes: purchases and finishes are
answered 503 with Retry-After and leave nothing half-applied, and selling resumes by itself
once memory is free again."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from flashsale import keys
from flashsale.api.app import create_app
from flashsale.settings import Settings
from tests.helpers import ADMIN, sale_body
from tests.polling import eventually
from tests.servers import redis_server

Client = TestClient[Any, Any]


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path / "redis", "--maxmemory", "4mb") as url:
        yield url


@pytest.fixture
async def small_client(settings: Settings, small_redis: str) -> AsyncIterator[Client]:
    app = create_app(settings.replace(redis_url=small_redis))
    async with TestClient(TestServer(app)) as client:
        yield client


def fill(url: str) -> None:
    """Writes junk until Redis refuses, then lowers maxmemory below what it holds: memory
    that sat in input buffers a moment ago must not let a write through afterwards."""
    client = redis.Redis.from_url(url)
    try:
        for i in itertools.count():
            try:
                client.set(f"junk:{i}", b"x" * 100_000)
            except redis.OutOfMemoryError:
                break
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used - 500_000)
        with pytest.raises(redis.OutOfMemoryError):
            client.set("one-more", "x")
    finally:
        client.close()


def sale_state(url: str, sale_id: str) -> tuple[Any, ...]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return (
            client.hgetall(keys.sale(sale_id)),
            client.hgetall(keys.held(sale_id)),
            client.smembers(keys.orders(sale_id)),
            client.zrange(keys.holds(sale_id), 0, -1),
            client.xlen(keys.events(sale_id)),
        )
    finally:
        client.close()


async def test_out_of_memory_is_503_with_nothing_half_applied(
    small_client: Client, small_redis: str
) -> None:
    body = sale_body(stock=10, per_user_limit=2)
    sale_id = body["sale_id"]
    assert (await small_client.post("/admin/sales", json=body, headers=ADMIN)).status == 201
    held = await small_client.post(
        f"/v1/sales/{sale_id}/purchases", json={"user_id": "early", "quantity": 1}
    )
    assert held.status == 201
    order_id = (await held.json())["order_id"]
    fill(small_redis)
    before = sale_state(small_redis, sale_id)

    for attempt in range(5):
        response = await small_client.post(
            f"/v1/sales/{sale_id}/purchases", json={"user_id": f"late-{attempt}", "quantity": 2}
        )
        assert response.status == 503, await response.text()
        assert (await response.json())["code"] == "overloaded"
        assert int(response.headers["Retry-After"]) >= 1
    for action in ("confirm", "cancel"):
        response = await small_client.post(f"/v1/orders/{order_id}/{action}")
        assert response.status == 503, await response.text()
    assert sale_state(small_redis, sale_id) == before

    client = redis.Redis.from_url(small_redis)
    client.delete(*client.keys("junk:*"))
    client.config_set("maxmemory", "4mb")
    client.close()

    async def sold_again() -> bool:
        response = await small_client.post(
            f"/v1/sales/{sale_id}/purchases", json={"user_id": "after", "quantity": 2}
        )
        return response.status == 201  # the breaker, opened by the refusals, probes first

    await eventually(sold_again, within=10, what="a purchase once memory is free")
