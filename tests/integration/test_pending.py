"""No answer lies about a purchase. One that reached Redis and could not learn its outcome in
time is 202 pending, never 503; the engine settles it by itself (held, or fenced so that it
never takes anything); and no unit is held for an order nobody was told about."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from flashsale import keys
from flashsale.api.app import create_app
from flashsale.ids import new_order_id
from flashsale.settings import Settings
from flashsale.store.outcomes import Rejected, Rejection, Reservation
from flashsale.store.sales import SaleStore
from tests.helpers import ADMIN, sale_body
from tests.integration.test_purchase_script import new_sale
from tests.polling import eventually

Client = TestClient[Any, Any]


async def test_an_attempt_settled_as_never_made_refuses_itself_later(store: SaleStore) -> None:
    sale = await new_sale(store, stock=3)
    late = new_order_id(sale.sale_id)
    assert await store.settle_attempt(late) is None  # fenced: it took nothing
    arrived = await store.purchase(sale.sale_id, "u1", 1, order_id=late)
    assert arrived == Rejected(Rejection.FENCED)
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    assert after.stock_left == 3
    assert await store.get_order(late) is None


async def test_an_attempt_that_took_effect_is_found_when_settled(store: SaleStore) -> None:
    sale = await new_sale(store, stock=3, per_user_limit=2)
    held = await store.purchase(sale.sale_id, "u1", 2)
    assert isinstance(held, Reservation)
    found = await store.settle_attempt(held.order_id)
    assert found is not None
    assert (found.status, found.quantity) == ("reserved", 2)
    # Settling twice is settling once.
    assert await store.settle_attempt(held.order_id) == found


async def test_a_404_from_confirm_is_final_too(store: SaleStore) -> None:
    sale = await new_sale(store, stock=3)
    unknown = new_order_id(sale.sale_id)
    assert await store.confirm(unknown) == Rejected(Rejection.NOT_FOUND)
    assert await store.purchase(sale.sale_id, "u1", 1, order_id=unknown) == Rejected(
        Rejection.FENCED
    )


@pytest.fixture
async def impatient_client(settings: Settings, private_redis: str) -> AsyncIterator[Client]:
    """Shoppers wait 0.3 s for an answer; Redis will stall for 2."""
    app = create_app(settings.replace(redis_url=private_redis, admission_deadline_seconds=0.3))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_a_stalled_redis_gets_202s_not_lies_and_every_hold_was_told(
    impatient_client: Client, private_redis: str
) -> None:
    client = impatient_client
    body = sale_body(stock=500, per_user_limit=1)
    sale_id = body["sale_id"]
    assert (await client.post("/admin/sales", json=body, headers=ADMIN)).status == 201

    async def buy(user: str) -> tuple[int, dict[str, Any]]:
        response = await client.post(
            f"/v1/sales/{sale_id}/purchases", json={"user_id": user, "quantity": 1}
        )
        return response.status, await response.json(content_type=None)

    pauser = redis.Redis.from_url(private_redis)
    pauser.client_pause(2000, all=False)  # writes stall; the scripts wait in Redis' queue
    pauser.close()
    answers = await asyncio.gather(*(buy(f"u{i}") for i in range(100)))

    statuses = {status for status, _ in answers}
    assert statuses <= {201, 202, 503}, statuses
    told = {b["order_id"] for status, b in answers if status in (201, 202)}
    pending = [b["order_id"] for status, b in answers if status == 202]
    assert pending, "no attempt was caught in flight: the 202 path was not exercised"
    for status, answer in answers:
        if status == 202:
            assert answer["status"] == "pending"
        if status == 503:
            assert answer["code"] == "overloaded"

    async def settled() -> dict[str, int | str] | None:
        outcomes: dict[str, int | str] = {}
        for order_id in pending:
            response = await client.get(f"/v1/orders/{order_id}")
            view = await response.json()
            if response.status == 200 and view["status"] == "pending":
                return None
            outcomes[order_id] = view["status"] if response.status == 200 else response.status
        return outcomes

    outcomes = await eventually(settled, within=15, what="every 202 to be settled")
    assert outcomes is not None
    assert set(outcomes.values()) <= {"reserved", 404}

    async with Redis.from_url(private_redis, decode_responses=True) as check:
        held = set()
        for order_id in await check.smembers(keys.orders(sale_id)):
            if await check.hget(keys.order(sale_id, str(order_id)), "status") == "reserved":
                held.add(str(order_id))
        stock_left = int(await check.hget(keys.sale(sale_id), "stock_left") or -1)
    assert held <= told, f"held for orders nobody was told about: {held - told}"
    assert {o for o, outcome in outcomes.items() if outcome == "reserved"} <= held
    assert not {o for o, outcome in outcomes.items() if outcome == 404} & held
    assert stock_left + len(held) == 500
