"""Launch-second spike over real HTTP: 2,000 concurrent attempts for 100 units."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from flashsale import keys
from tests.helpers import ADMIN, sale_body
from tests.history import History, checked_in_data_dir, purchase
from tests.service import Service

USERS = 1_000
STOCK = 100


async def test_two_thousand_concurrent_attempts_sell_exactly_the_stock(
    service: Service, service_redis_url: str
) -> None:
    body = sale_body(stock=STOCK, per_user_limit=1)
    sale_id = body["sale_id"]
    attempts: list[tuple[str, str | None]] = []
    for i in range(USERS):
        user = f"shopper-{i}"
        if i % 3 == 0:  # a third retry their press with the same Idempotency-Key
            attempts += [(user, f"press-{i}"), (user, f"press-{i}")]
        else:  # the rest press twice, each press a new attempt
            attempts += [(user, None), (user, f"press-{i}")]
    random.shuffle(attempts)
    history = History()

    connector = aiohttp.TCPConnector(limit=500)
    async with aiohttp.ClientSession(service.url, connector=connector) as http:
        created = await http.post("/admin/sales", json=body, headers=ADMIN)
        assert created.status == 201
        start = asyncio.Event()

        async def attempt(user: str, key: str | None) -> tuple[str, str | None, int, Any]:
            await start.wait()
            op = await purchase(http, history, sale_id, user, 1, key)
            return user, key, op.status, op.body

        tasks = [asyncio.create_task(attempt(user, key)) for user, key in attempts]
        start.set()
        answers = await asyncio.gather(*tasks)

        statuses = Counter(status for _u, _k, status, _b in answers)
        codes = Counter(b.get("code") for _u, _k, status, b in answers if status != 201)
        assert set(statuses) <= {201, 409}, statuses
        assert set(codes) <= {"sold_out", "user_limit_reached"}, codes

        # A retry with the same key answers exactly what the first press got.
        by_key: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        for user, key, status, answer in answers:
            if key is not None:
                by_key.setdefault((user, key), []).append((status, answer))
        retried = [pair for pair in by_key.values() if len(pair) == 2]
        assert len(retried) == len(range(0, USERS, 3))
        assert all(first == second for first, second in retried)

        orders_by_user: dict[str, set[str]] = {}
        for user, _key, status, answer in answers:
            if status == 201:
                orders_by_user.setdefault(user, set()).add(answer["order_id"])
        assert sum(len(orders) for orders in orders_by_user.values()) == STOCK
        assert max(len(orders) for orders in orders_by_user.values()) == 1

        sale = await (await http.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
        assert sale["stock_left"] == 0
        assert sale["status"] == "sold_out"
        assert sale["counts"]["reserved"] == STOCK
        for orders in list(orders_by_user.values())[:20]:
            order = await http.get(f"/v1/orders/{next(iter(orders))}")
            assert order.status == 200

    # Invariant 1 from the order records themselves, not from the engine's counters.
    client = aioredis.Redis.from_url(service_redis_url, decode_responses=True)
    try:
        units = 0
        holders: Counter[str] = Counter()
        async for key in client.scan_iter(match=keys.order(sale_id, "*"), count=1000):
            record = {str(k): str(v) for k, v in (await client.hgetall(key)).items()}
            units += int(record["quantity"])
            holders[record["user_id"]] += int(record["quantity"])
    finally:
        await client.aclose()
    assert units == STOCK
    assert sale["stock_left"] + units == sale["stock_total"]
    assert max(holders.values()) == 1
    # And from the outside: what 2,000 shoppers were told holds against Redis and the store.
    report = await checked_in_data_dir(service_redis_url, service.data_dir, history, sale_id)
    assert report.valid, report.render()
    assert report.attempts == 2 * USERS
