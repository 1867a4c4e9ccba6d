"""purchase.lua against a real Redis: every return code, retries, concurrency, SCRIPT FLUSH."""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from flashsale import keys
from flashsale.api.schemas import CreateSaleRequest
from flashsale.ids import new_order_id
from flashsale.records import SaleChange, SaleRecord
from flashsale.store.lua import script_source
from flashsale.store.outcomes import Rejected, Rejection, Reservation
from flashsale.store.sales import SaleStore
from tests.helpers import from_now, sale_body


async def new_sale(store: SaleStore, **overrides: Any) -> SaleRecord:
    body = sale_body(**overrides)
    request = msgspec.convert(body, CreateSaleRequest, strict=False)
    created = await store.create_sale(body["sale_id"], request.new_sale())
    assert isinstance(created, SaleRecord)
    return created


async def units_held_in_orders(redis: Redis, sale_id: str) -> dict[str, int]:
    """Units per user summed from the order records themselves, not from counters."""
    held: dict[str, int] = {}
    async for key in redis.scan_iter(match=keys.order(sale_id, "*"), count=1000):
        order = {str(k): str(v) for k, v in (await redis.hgetall(key)).items()}
        if order["status"] in ("reserved", "confirmed"):
            held[order["user_id"]] = held.get(order["user_id"], 0) + int(order["quantity"])
    return held


async def test_a_purchase_holds_units_until_expiry(store: SaleStore) -> None:
    sale = await new_sale(store, stock=5, per_user_limit=3, hold_seconds=90)
    outcome = await store.purchase(sale.sale_id, "alice", 2)
    assert isinstance(outcome, Reservation)
    assert outcome.expires_at - outcome.created_at == 90_000
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    assert after.stock_left == 3
    order = await store.get_order(outcome.order_id)
    assert order is not None
    assert (order.user_id, order.quantity, order.status) == ("alice", 2, "reserved")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"starts_at": from_now(hours=1), "ends_at": from_now(hours=2)},
            Rejection.SALE_NOT_STARTED,
        ),
        ({"starts_at": from_now(hours=-2), "ends_at": from_now(hours=-1)}, Rejection.SALE_ENDED),
    ],
)
async def test_the_window_is_judged_by_redis_time(
    store: SaleStore, overrides: dict[str, str], expected: Rejection
) -> None:
    sale = await new_sale(store, **overrides)
    assert await store.purchase(sale.sale_id, "bob", 1) == Rejected(expected)


async def test_unknown_sale_is_not_found(store: SaleStore) -> None:
    assert await store.purchase("no-such-sale", "bob", 1) == Rejected(Rejection.NOT_FOUND)


async def test_paused_and_operator_ended_sales_refuse(store: SaleStore) -> None:
    sale = await new_sale(store)
    await store.patch_sale(sale.sale_id, SaleChange(paused=True))
    assert await store.purchase(sale.sale_id, "bob", 1) == Rejected(Rejection.SALE_PAUSED)
    await store.end_sale(sale.sale_id)
    assert await store.purchase(sale.sale_id, "bob", 1) == Rejected(Rejection.SALE_ENDED)


async def test_sold_out_and_user_limit(store: SaleStore) -> None:
    sale = await new_sale(store, stock=3, per_user_limit=2)
    assert await store.purchase(sale.sale_id, "u1", 3) == Rejected(Rejection.USER_LIMIT_REACHED)
    assert isinstance(await store.purchase(sale.sale_id, "u1", 2), Reservation)
    assert await store.purchase(sale.sale_id, "u1", 1) == Rejected(Rejection.USER_LIMIT_REACHED)
    assert await store.purchase(sale.sale_id, "u2", 2) == Rejected(Rejection.SOLD_OUT)
    assert isinstance(await store.purchase(sale.sale_id, "u2", 1), Reservation)
    assert await store.purchase(sale.sale_id, "u3", 1) == Rejected(Rejection.SOLD_OUT)
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    assert after.stock_left == 0
    assert after.counters["attempts"] == 6
    assert after.counters["rejected"] == 4


async def test_a_retried_attempt_takes_nothing_twice(store: SaleStore) -> None:
    sale = await new_sale(store, stock=5)
    order_id = new_order_id(sale.sale_id)
    first = await store.purchase(sale.sale_id, "carol", 1, order_id=order_id)
    again = await store.purchase(sale.sale_id, "carol", 1, order_id=order_id)
    assert isinstance(first, Reservation)
    assert isinstance(again, Reservation)
    # Its own outcome, which is no replay of another request's (no Idempotent-Replayed).
    assert (again.order_id, again.expires_at, again.replayed) == (order_id, first.expires_at, False)
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    assert after.stock_left == 4
    assert after.counters["attempts"] == 1


async def test_each_reservation_is_one_stream_event(store: SaleStore, redis: Redis) -> None:
    sale = await new_sale(store, stock=3, per_user_limit=1)
    outcomes = [await store.purchase(sale.sale_id, user, 1) for user in ("a", "b", "a", "c", "d")]
    reserved = [o.order_id for o in outcomes if isinstance(o, Reservation)]
    events = [fields for _id, fields in await redis.xrange(keys.events(sale.sale_id)) or []]
    assert [fields and fields["order_id"] for fields in events] == reserved
    assert {fields and fields["type"] for fields in events} == {"reserved"}


async def test_concurrent_purchases_never_oversell(store: SaleStore, redis: Redis) -> None:
    sale = await new_sale(store, stock=50, per_user_limit=2)
    users = [f"user-{i}" for i in range(150)]
    attempts = [(user, random.choice([1, 1, 2])) for user in users for _ in range(2)]
    outcomes = await asyncio.gather(
        *(store.purchase(sale.sale_id, user, quantity) for user, quantity in attempts)
    )
    sold = sum(o.quantity for o in outcomes if isinstance(o, Reservation))
    held = await units_held_in_orders(redis, sale.sale_id)
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    assert sold == sum(held.values()) == 50 - after.stock_left
    assert after.stock_left + after.counters["u_reserved"] + after.counters["u_confirmed"] == 50
    assert after.stock_left >= 0
    assert max(held.values()) <= 2
    # Stock is tight (300 attempts for 50 units), so it must be gone, not merely bounded.
    assert after.stock_left <= 1


async def test_concurrent_multi_unit_purchases_never_take_more_than_is_left(
    store: SaleStore, redis: Redis
) -> None:
    """An odd stock and only pairs asked for: the last unit can go to nobody, however the
    attempts interleave."""
    sale = await new_sale(store, stock=51, per_user_limit=2)
    outcomes = await asyncio.gather(
        *(store.purchase(sale.sale_id, f"pair-{i}", 2) for i in range(100))
    )
    reserved = [o for o in outcomes if isinstance(o, Reservation)]
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    assert len(reserved) == 25
    assert after.stock_left == 1
    assert sum((await units_held_in_orders(redis, sale.sale_id)).values()) == 50
    assert {o.reason for o in outcomes if isinstance(o, Rejected)} == {Rejection.SOLD_OUT}


async def test_purchases_keep_working_across_script_flush(store: SaleStore, redis: Redis) -> None:
    sale = await new_sale(store, stock=200, per_user_limit=1)

    async def buy(i: int) -> object:
        return await store.purchase(sale.sale_id, f"flush-user-{i}", 1)

    first = await asyncio.gather(*(buy(i) for i in range(50)))
    await redis.script_flush()
    assert await redis.script_exists(purchase_script_sha()) == [False]
    during = asyncio.gather(*(buy(i) for i in range(50, 150)))
    await redis.script_flush()
    rest = await during
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    assert all(isinstance(o, Reservation) for o in [*first, *rest])
    assert after.stock_left == 50


def purchase_script_sha() -> str:
    """The SHA1 under which Redis caches the purchase script (what EVALSHA names)."""
    return hashlib.sha1(script_source("purchase").encode(), usedforsecurity=False).hexdigest()


async def test_creating_a_sale_whose_group_a_worker_made_first(
    store: SaleStore, redis: Redis
) -> None:
    """The sale's id enters the index before its script runs; a worker reading the index in
    between creates the stream's group. The sale must still be created, and whole."""
    body = sale_body()
    await redis.xgroup_create(
        keys.events(body["sale_id"]), keys.ORDER_STORE_GROUP, id="0", mkstream=True
    )
    created = await store.create_sale(
        body["sale_id"], msgspec.convert(body, CreateSaleRequest, strict=False).new_sale()
    )
    assert isinstance(created, SaleRecord)
    assert created.stock_left == body["stock"]
    assert isinstance(await store.purchase(body["sale_id"], "after-race", 1), Reservation)
