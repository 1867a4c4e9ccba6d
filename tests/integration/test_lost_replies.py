"""Every state-changing script is safe to run twice with the same arguments, which is what a
Redis client sends again when a reply is lost: the second run changes nothing and answers
as the first did. (Purchase, confirm, cancel, expiry and counts have tests of their own.)"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from flashsale import keys
from flashsale.records import SaleChange
from flashsale.store.outcomes import Rejected, Rejection
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from tests.helpers import ADMIN, unique_id
from tests.integration.conftest import CreateSale
from tests.integration.test_active_sales import window

Client = TestClient[Any, Any]


async def test_a_resent_creation_is_the_same_creation(store: SaleStore, redis: Redis) -> None:
    scripts = Scripts.register(redis)
    sale_id = unique_id()
    sale = window(-60, 3600)
    assert await scripts.create_sale(sale_id, "ref-x", sale, "creation-1") is None
    assert await scripts.create_sale(sale_id, "ref-x", sale, "creation-1") is None
    assert await scripts.create_sale(sale_id, "ref-x", sale, "creation-2") == Rejected(
        Rejection.SALE_EXISTS
    )
    assert await redis.hget(keys.sale(sale_id), "stock_total") == str(sale.stock)


async def test_a_resent_change_adds_stock_once(store: SaleStore, redis: Redis) -> None:
    created = await store.create_sale(unique_id(), window(-60, 3600))
    assert not isinstance(created, Rejected)
    scripts = Scripts.register(redis)
    more = SaleChange(add_stock=7)
    for _ in range(3):
        assert await scripts.patch_sale(created.sale_id, more, "change-1", "fp") is None
    assert await scripts.patch_sale(
        created.sale_id, SaleChange(add_stock=1), "change-1", "fp2"
    ) == (Rejected(Rejection.IDEMPOTENCY_CONFLICT))
    after = await store.get_sale(created.sale_id)
    assert after is not None
    assert (after.stock_total, after.stock_left) == (
        created.stock_total + 7,
        created.stock_left + 7,
    )


async def stock(client: Client, sale_id: str) -> tuple[int, int]:
    view = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    return view["stock_total"], view["stock_left"]


async def test_an_operator_repeating_a_keyed_patch_adds_stock_once(
    client: Client, create_sale: CreateSale
) -> None:
    sale = await create_sale(stock=10)
    path = f"/admin/sales/{sale['sale_id']}"
    keyed = {**ADMIN, "Idempotency-Key": "restock-2026-11-29"}
    answers = [await client.patch(path, json={"add_stock": 5}, headers=keyed) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert await stock(client, sale["sale_id"]) == (15, 15)

    other = await client.patch(path, json={"add_stock": 50}, headers=keyed)
    assert other.status == 422
    assert (await other.json())["code"] == "idempotency_conflict"
    assert await stock(client, sale["sale_id"]) == (15, 15)
    # Without a key, each PATCH is a change of its own.
    for _ in range(2):
        assert (await client.patch(path, json={"add_stock": 1}, headers=ADMIN)).status == 200
    assert await stock(client, sale["sale_id"]) == (17, 17)
