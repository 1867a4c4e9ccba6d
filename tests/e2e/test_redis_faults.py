"""Redis paused and killed mid-sale: every request answered by its deadline, 503s carry
Retry-After, nothing oversold, and the service recovers by itself."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from flashsale import keys
from flashsale.runtime.redis_server import RedisServer
from tests.helpers import ADMIN, ADMIN_TOKEN, sale_body
from tests.polling import eventually
from tests.servers import redis_process
from tests.service import Service, flashsale_service

pytestmark = pytest.mark.slow

DEADLINE = 1.0
# What "answered by its deadline" allows for: the event loop, HTTP, a loaded CI machine.
MARGIN = 1.0


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = redis_process(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def service(durable_redis: RedisServer, tmp_path: Path) -> Iterator[Service]:
    env = {
        "FLASHSALE_REDIS_URL": durable_redis.url,
        "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
        "FLASHSALE_ADMISSION_DEADLINE_SECONDS": str(DEADLINE),
        "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0",
        "FLASHSALE_ADMISSION_USER_RATE_PER_SECOND": "0",
        "FLASHSALE_BREAKER_OPEN_SECONDS": "0.5",
        "FLASHSALE_REDIS_CONNECT_TIMEOUT_SECONDS": "0.5",
    }
    with flashsale_service(tmp_path / "data", env) as running:
        yield running


async def timed_purchases(
    http: aiohttp.ClientSession, sale_id: str, prefix: str, count: int
) -> list[tuple[float, int, dict[str, str], Any]]:
    async def one(i: int) -> tuple[float, int, dict[str, str], Any]:
        started = time.monotonic()
        async with http.post(
            f"/v1/sales/{sale_id}/purchases", json={"user_id": f"{prefix}-{i}", "quantity": 1}
        ) as response:
            body = await response.json(content_type=None)
            return time.monotonic() - started, response.status, dict(response.headers), body

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def assert_answered_in_time(answers: list[tuple[float, int, dict[str, str], Any]]) -> None:
    late = sorted((round(e, 2), status) for e, status, _h, _b in answers if e >= DEADLINE + MARGIN)
    assert not late, f"answers later than the deadline allows: {late}"
    for _elapsed, status, headers, body in answers:
        assert status in (201, 202, 503), (status, body)
        if status == 503:
            assert body["code"] == "overloaded"
            assert int(headers["Retry-After"]) >= 1
        if status == 202:  # reached Redis, outcome not known in time: never a 503
            assert body["status"] == "pending"
            assert headers["Location"] == f"/v1/orders/{body['order_id']}"
            assert int(headers["Retry-After"]) >= 1


async def settle_every_pending(
    http: aiohttp.ClientSession, answers: list[tuple[float, int, dict[str, str], Any]]
) -> dict[str, str]:
    """Waits until every 202 among `answers` is settled; its final answer by order id:
    "reserved" (it took the units) or "not_found" (it took nothing and never will)."""
    pending = [b["order_id"] for _e, status, _h, b in answers if status == 202]

    async def settled() -> dict[str, str] | None:
        outcomes = {}
        for order_id in pending:
            async with http.get(f"/v1/orders/{order_id}") as response:
                view = await response.json(content_type=None)
                if response.status == 503 or view.get("status") == "pending":
                    return None
                outcomes[order_id] = view["status"] if response.status == 200 else view["code"]
        return outcomes

    outcomes = await eventually(settled, within=20, what="every 202 to settle")
    assert outcomes is not None
    assert set(outcomes.values()) <= {"reserved", "not_found"}
    return outcomes


def assert_every_hold_was_told(
    url: str,
    sale_id: str,
    prefix: str,
    answers: list[tuple[float, int, dict[str, str], Any]],
    settled: dict[str, str],
) -> None:
    """Invariant 5: no shopper answered 503 holds a unit (timed_purchases names shopper i
    `prefix-i`), and each settled 202 says what Redis has."""
    refused = {f"{prefix}-{i}" for i, (_e, status, _h, _b) in enumerate(answers) if status == 503}
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        holders = {
            str(order_id): client.hgetall(keys.order(sale_id, str(order_id)))
            for order_id in client.smembers(keys.orders(sale_id))
        }
    finally:
        client.close()
    assert not refused & {o["user_id"] for o in holders.values()}
    for order_id, outcome in settled.items():
        assert (order_id in holders) == (outcome == "reserved"), (order_id, outcome)


def assert_not_oversold(url: str, sale_id: str, stock: int) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        sale = client.hgetall(keys.sale(sale_id))
        order_ids = [str(o) for o in client.smembers(keys.orders(sale_id))]
        units = 0
        for order_id in order_ids:
            units += int(str(client.hget(keys.order(sale_id, order_id), "quantity") or 0))
    finally:
        client.close()
    assert int(sale["stock_left"]) >= 0
    assert int(sale["stock_left"]) + units == stock


async def order_status(http: aiohttp.ClientSession, order_id: str) -> int:
    async with http.get(f"/v1/orders/{order_id}") as response:
        return response.status


async def wait_recovered(http: aiohttp.ClientSession, sale_id: str) -> None:
    """Until a round of purchases all succeed: every process's breaker has probed and closed
    (while one probes, the others it would admit are still refused)."""
    rounds = itertools.count(1)

    async def all_bought() -> bool:
        answers = await timed_purchases(http, sale_id, f"recovery-{next(rounds)}", 10)
        return {status for _e, status, _h, _b in answers} == {201}

    await eventually(all_bought, within=15, what="the service to recover by itself", interval=0.1)


async def test_redis_paused_mid_sale(service: Service, durable_redis: RedisServer) -> None:
    body = sale_body(stock=500, per_user_limit=1)
    async with aiohttp.ClientSession(service.url) as http:
        assert (await http.post("/admin/sales", json=body, headers=ADMIN)).status == 201
        assert_answered_in_time(await timed_purchases(http, body["sale_id"], "calm", 20))

        pauser = redis.Redis.from_url(durable_redis.url)
        try:
            pauser.client_pause(3000, all=True)
            during = await timed_purchases(http, body["sale_id"], "paused", 60)
        finally:
            pauser.close()
        assert_answered_in_time(during)
        assert any(status in (202, 503) for _e, status, _h, _b in during)

        await wait_recovered(http, body["sale_id"])
        settled = await settle_every_pending(http, during)
    assert_not_oversold(durable_redis.url, body["sale_id"], 500)
    assert_every_hold_was_told(durable_redis.url, body["sale_id"], "paused", during, settled)


async def test_redis_killed_mid_sale(service: Service, durable_redis: RedisServer) -> None:
    body = sale_body(stock=500, per_user_limit=1)
    async with aiohttp.ClientSession(service.url) as http:
        assert (await http.post("/admin/sales", json=body, headers=ADMIN)).status == 201
        before = await timed_purchases(http, body["sale_id"], "before", 20)
        acknowledged = [b["order_id"] for _e, status, _h, b in before if status == 201]
        assert len(acknowledged) == 20

        durable_redis.kill()
        during = await timed_purchases(http, body["sale_id"], "down", 60)
        assert_answered_in_time(during)
        assert {status for _e, status, _h, _b in during} == {503}
        # Several more rounds: the breaker is open now, and answers come at once.
        again = await timed_purchases(http, body["sale_id"], "still-down", 60)
        assert max(elapsed for elapsed, *_ in again) < MARGIN

        durable_redis.start()
        await wait_recovered(http, body["sale_id"])
        for order_id in acknowledged:
            # A process whose breaker still probes may refuse a request or two: ask again.
            async def answered(order_id: str = order_id) -> int | None:
                status = await order_status(http, order_id)
                return None if status == 503 else status

            assert await eventually(answered, within=10, what="an answer other than 503") == 200
    assert_not_oversold(durable_redis.url, body["sale_id"], 500)
