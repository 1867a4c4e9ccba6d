"""Shedding cheaply: the sold-out short-circuit and the rate limits, through HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from flashsale import keys
from flashsale.api.app import create_app
from flashsale.settings import Settings
from tests.helpers import ADMIN, metric, sale_body

Client = TestClient[Any, Any]


async def script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_eval"))


async def buy(client: Client, sale_id: str, user: str, **headers: str) -> Any:
    return await client.post(
        f"/v1/sales/{sale_id}/purchases", json={"user_id": user, "quantity": 1}, headers=headers
    )


async def create(client: Client, **overrides: Any) -> str:
    body = sale_body(**overrides)
    assert (await client.post("/admin/sales", json=body, headers=ADMIN)).status == 201
    return str(body["sale_id"])


async def test_after_sell_out_attempts_never_reach_redis_until_stock_returns(
    client: Client, redis: Redis
) -> None:
    sale_id = await create(client, stock=1)
    held = await buy(client, sale_id, "winner")
    assert held.status == 201
    # The first refusal comes from Redis and raises this process's flag.
    assert (await buy(client, sale_id, "late-0")).status == 409

    before = await script_calls(redis)
    for i in range(1, 51):  # one at a time: without the flag, each would be a script call
        refused = await buy(client, sale_id, f"late-{i}")
        assert refused.status == 409
        assert (await refused.json(content_type=None))["code"] == "sold_out"
    # At most one call: the once-a-second flush of the locally answered attempts' counts.
    assert await script_calls(redis) - before <= 1

    order_id = (await held.json())["order_id"]
    assert (await client.post(f"/v1/orders/{order_id}/cancel")).status == 200
    cancelled_at = time.monotonic()
    while (response := await buy(client, sale_id, "second-chance")).status != 201:
        assert time.monotonic() - cancelled_at < 1.0, "the returned unit stayed unsellable"
    assert (await response.json())["user_id"] == "second-chance"


async def test_a_sold_out_answer_needs_no_body_and_says_what_the_full_one_says(
    client: Client,
) -> None:
    """Once this process knows the sale is sold out, an attempt without an Idempotency-Key
    is answered before its body is even parsed - a broken body included - and the answer,
    from pre-encoded bytes, is the one Redis's refusal gave."""
    sale_id = await create(client, stock=1)
    assert (await buy(client, sale_id, "winner")).status == 201
    from_redis = await buy(client, sale_id, "late-0")  # raises the flag
    early = await client.post(
        f"/v1/sales/{sale_id}/purchases", data=b"{not even json",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (early.status, early.content_type) == (from_redis.status, from_redis.content_type)
    assert await early.json(content_type=None) == await from_redis.json(content_type=None)
    assert early.headers.get("Retry-After") == from_redis.headers.get("Retry-After")


async def test_an_idempotent_retry_is_answered_truthfully_after_sell_out(
    client: Client,
) -> None:
    sale_id = await create(client, stock=1)
    first = await buy(client, sale_id, "keyed", **{"Idempotency-Key": "press-1"})
    assert (await buy(client, sale_id, "other")).status == 409  # flag raised
    again = await buy(client, sale_id, "keyed", **{"Idempotency-Key": "press-1"})
    assert again.status == 201
    assert await again.json() == await first.json()


@pytest.fixture
async def own_redis_client(
    settings: Settings, private_redis: str
) -> AsyncIterator[tuple[Client, Redis]]:
    """The app on a Redis of its own: what this Redis counts is this app's doing alone (the
    session's Redis also runs other tests' apps' background scripts)."""
    async with (
        TestClient(TestServer(create_app(settings.replace(redis_url=private_redis)))) as own,
        Redis.from_url(private_redis, decode_responses=True) as redis,
    ):
        yield own, redis


async def test_fresh_idempotency_keys_cannot_reach_the_stock_past_the_flag(
    own_redis_client: tuple[Client, Redis],
) -> None:
    """A bot sending a new key with every press is answered from the flag: nothing is
    written for it, so it can neither reach the stock nor fill Redis with records."""
    client, redis = own_redis_client
    sale_id = await create(client, stock=1)
    assert (await buy(client, sale_id, "winner", **{"Idempotency-Key": "w-1"})).status == 201
    assert (await buy(client, sale_id, "late")).status == 409  # flag raised
    records = keys.idempotency(sale_id, "-", "-").split(":idem:")[0] + ":idem:*"
    before = await script_calls(redis)
    for i in range(30):
        refused = await buy(client, sale_id, "bot", **{"Idempotency-Key": f"fresh-{i}"})
        assert refused.status == 409
        assert (await refused.json(content_type=None))["code"] == "sold_out"
        assert "Idempotent-Replayed" not in refused.headers
    assert [k async for k in redis.scan_iter(match=records)] == [
        keys.idempotency(sale_id, "winner", "w-1")
    ]
    # Each was one read-only look for a first answer, plus at most the counts' flush.
    assert await script_calls(redis) - before <= 31
    sale = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    assert sale["counts"]["reserved"] == 1


@pytest.fixture
async def limited_client(settings: Settings) -> AsyncIterator[Client]:
    limited = settings.replace(
        admission_user_rate_per_second=1.0,
        admission_user_burst=2,
        admission_ip_rate_per_second=1.0,
        admission_ip_burst=4,
        admission_trusted_proxies="127.0.0.1/32",
    )
    async with TestClient(TestServer(create_app(limited))) as test_client:
        yield test_client


async def test_per_user_rate_limit(limited_client: Client) -> None:
    client = limited_client
    sale_id = await create(client, stock=20, per_user_limit=10)
    ip = {"X-Forwarded-For": "198.51.100.1"}
    assert (await buy(client, sale_id, "eager", **ip)).status == 201
    assert (await buy(client, sale_id, "eager", **ip)).status == 201
    limited = await buy(client, sale_id, "eager", **ip)
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await limited.json(content_type=None))["code"] == "rate_limited"
    assert (await buy(client, sale_id, "patient", **ip)).status == 201
    view = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    assert view["stock_left"] == 17  # the refused attempt took nothing


async def test_per_ip_rate_limit_through_a_trusted_proxy(limited_client: Client) -> None:
    client = limited_client
    sale_id = await create(client, stock=20, per_user_limit=10)
    bot = {"X-Forwarded-For": "203.0.113.66"}
    answers = [(await buy(client, sale_id, f"bot-{i}", **bot)).status for i in range(4)]
    assert answers == [201] * 4  # the burst
    limited = await buy(client, sale_id, "bot-x", **bot)
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await client.get(f"/v1/sales/{sale_id}", headers=bot)).status == 429
    # Another shopper behind the same proxy is not punished for the bot.
    assert (await buy(client, sale_id, "human", **{"X-Forwarded-For": "192.0.2.10"})).status == 201


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings: Settings) -> None:
    strict = settings.replace(admission_ip_rate_per_second=1.0, admission_ip_burst=2)
    async with TestClient(TestServer(create_app(strict))) as client:
        statuses = [
            (
                await client.get("/v1/sales/whatever", headers={"X-Forwarded-For": f"192.0.2.{i}"})
            ).status
            for i in range(3)
        ]
    # Three "different" clients, but the peer (127.0.0.1) is not a trusted proxy.
    assert statuses == [404, 404, 429]


async def test_a_refusal_is_counted_once_by_its_own_counter(limited_client: Client) -> None:
    """Refusals come by the thousand under overload: each costs one metric increment (its
    own counter's), and the HTTP request metrics leave them out."""
    client = limited_client
    route = {"route": "/v1/sales/{sale_id}/purchases", "method": "POST"}
    sale_id = await create(client, stock=1)
    assert (await buy(client, sale_id, "winner", **{"X-Forwarded-For": "192.0.2.1"})).status == 201
    assert (await buy(client, sale_id, "late", **{"X-Forwarded-For": "192.0.2.2"})).status == 409
    before = await (await client.get("/metrics")).text()

    for i in range(3):  # from the flag: no body parsed, no Redis
        assert (await buy(client, sale_id, f"u{i}", **{"X-Forwarded-For": f"192.0.2.{10 + i}"})
                ).status == 409  # fmt: skip
    keyed = {"X-Forwarded-For": "192.0.2.20", "Idempotency-Key": "k-1"}
    assert (await buy(client, sale_id, "keyed", **keyed)).status == 409  # Redis asked, not sold
    bot = {"X-Forwarded-For": "203.0.113.9"}
    statuses = [(await buy(client, sale_id, f"bot-{i}", **bot)).status for i in range(6)]
    assert statuses.count(429) == 2  # the address's burst of 4 is spent
    after = await (await client.get("/metrics")).text()

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("flashsale_sold_out_local_total") == 8  # 3, the keyed one, the bot's 4
    assert grew("flashsale_shed_total", reason="rate_limited_ip") == 2
    assert grew("flashsale_purchase_attempts_total", outcome="sold_out") == 0
    assert grew("flashsale_http_requests_total", **route, status="409") == 0
    assert grew("flashsale_http_requests_total", **route, status="429") == 0
    assert grew("flashsale_http_request_seconds_count", route=route["route"]) == 0
