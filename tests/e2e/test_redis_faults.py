"""Redis paused and killed mid-sale: every request answered by its deadline, 503s carry
Retry-After, nothing oversold, and the service recovers by itself."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis

from flashsale.runtime.redis_server import RedisServer
from tests.helpers import ADMIN, ADMIN_TOKEN, sale_body
from tests.history import History, Operation, Report, checked_in_data_dir, purchase, settle_pending
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


async def purchases(
    http: aiohttp.ClientSession, history: History, sale_id: str, prefix: str, count: int
) -> list[Operation]:
    """`count` shoppers `prefix-i` buy 1 or 2 units at once, each with a key of their own."""
    return list(
        await asyncio.gather(
            *(
                purchase(http, history, sale_id, f"{prefix}-{i}", 1 + i % 2, f"{prefix}-key-{i}")
                for i in range(count)
            )
        )
    )


def assert_answered_in_time(answers: list[Operation]) -> None:
    late = sorted(
        (round(op.elapsed, 2), op.detail) for op in answers if op.elapsed >= DEADLINE + MARGIN
    )
    assert not late, f"answers later than the deadline allows: {late}"
    for op in answers:
        assert op.status in (201, 202, 503), (op.status, op.body)
        if op.status == 503:
            assert op.body["code"] == "overloaded"
            assert int(op.headers["Retry-After"]) >= 1
        if op.status == 202:  # reached Redis, outcome not known in time: never a 503
            assert op.body["status"] == "pending"
            assert op.headers["Location"] == f"/v1/orders/{op.order_id}"
            assert int(op.headers["Retry-After"]) >= 1


async def assert_history_checks_out(
    service: Service, http: aiohttp.ClientSession, history: History, url: str, sale_id: str
) -> Report:
    """Every 202 settles, and the history holds against Redis and the order store: nothing
    held untold (invariant 5), no 201 lost, nothing oversold or duplicated, and the store
    agrees with Redis once the worker has caught up."""
    await settle_pending(http, history)
    report = await checked_in_data_dir(url, service.data_dir, history, sale_id)
    assert report.valid, report.render()
    return report


async def order_status(http: aiohttp.ClientSession, order_id: str) -> int:
    async with http.get(f"/v1/orders/{order_id}") as response:
        return response.status


async def wait_recovered(http: aiohttp.ClientSession, history: History, sale_id: str) -> None:
    """Until a round of purchases all succeed: every process's breaker has probed and closed
    (while one probes, the others it would admit are still refused)."""
    rounds = itertools.count(1)

    async def all_bought() -> bool:
        answers = await purchases(http, history, sale_id, f"recovery-{next(rounds)}", 10)
        return {op.status for op in answers} == {201}

    await eventually(all_bought, within=15, what="the service to recover by itself", interval=0.1)


async def test_redis_paused_mid_sale(service: Service, durable_redis: RedisServer) -> None:
    body = sale_body(stock=500, per_user_limit=2)
    sale_id = body["sale_id"]
    history = History()
    async with aiohttp.ClientSession(service.url) as http:
        assert (await http.post("/admin/sales", json=body, headers=ADMIN)).status == 201
        assert_answered_in_time(await purchases(http, history, sale_id, "calm", 20))

        pauser = redis.Redis.from_url(durable_redis.url)
        try:
            pauser.client_pause(3000, all=True)
            during = await purchases(http, history, sale_id, "paused", 60)
        finally:
            pauser.close()
        assert_answered_in_time(during)
        assert any(op.status in (202, 503) for op in during)

        await wait_recovered(http, history, sale_id)
        await assert_history_checks_out(service, http, history, durable_redis.url, sale_id)


async def test_redis_killed_mid_sale(service: Service, durable_redis: RedisServer) -> None:
    body = sale_body(stock=500, per_user_limit=2)
    sale_id = body["sale_id"]
    history = History()
    async with aiohttp.ClientSession(service.url) as http:
        assert (await http.post("/admin/sales", json=body, headers=ADMIN)).status == 201
        before = await purchases(http, history, sale_id, "before", 20)
        assert {op.status for op in before} == {201}

        durable_redis.kill()
        during = await purchases(http, history, sale_id, "down", 60)
        assert_answered_in_time(during)
        # Refused - or, for a call already written to a pooled connection when Redis died,
        # 202: the client cannot tell a reply lost with Redis from a call never run.
        statuses = {op.status for op in during}
        assert 503 in statuses
        assert statuses <= {202, 503}
        # Several more rounds: the breaker is open now, and answers come at once.
        again = await purchases(http, history, sale_id, "still-down", 60)
        assert max(op.elapsed for op in again) < MARGIN

        durable_redis.start()
        await wait_recovered(http, history, sale_id)
        for op in before:
            # A process whose breaker still probes may refuse a request or two: ask again.
            async def answered(order_id: str | None = op.order_id) -> int | None:
                assert order_id is not None
                status = await order_status(http, order_id)
                return None if status == 503 else status

            assert await eventually(answered, within=10, what="an answer other than 503") == 200
        # The 201s from before the kill survived it (appendfsync always), in the store too.
        await assert_history_checks_out(service, http, history, durable_redis.url, sale_id)
