"""confirm.lua, cancel.lua and expire_holds.lua against a real Redis, alone and racing."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.store.outcomes import Rejected, Rejection, Reservation, Settled
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from flashsale.worker.sweeper import HoldSweeper
from tests.integration.test_purchase_script import new_sale, units_held_in_orders
from tests.polling import eventually


async def reserve(store: SaleStore, sale_id: str, user: str, quantity: int = 1) -> str:
    outcome = await store.purchase(sale_id, user, quantity)
    assert isinstance(outcome, Reservation), outcome
    return outcome.order_id


async def stock_left(store: SaleStore, sale_id: str) -> int:
    sale = await store.get_sale(sale_id)
    assert sale is not None
    return sale.stock_left


async def redis_now_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_confirm_keeps_units_sold_and_is_idempotent(store: SaleStore) -> None:
    sale = await new_sale(store, stock=3, per_user_limit=2)
    order_id = await reserve(store, sale.sale_id, "u1", 2)
    assert await store.confirm(order_id) == Settled("confirmed", replayed=False)
    assert await store.confirm(order_id) == Settled("confirmed", replayed=True)
    assert await store.cancel(order_id) == Rejected(Rejection.ORDER_NOT_PENDING)
    assert await stock_left(store, sale.sale_id) == 1
    # Confirmed units still count against the user's cap.
    assert await store.purchase(sale.sale_id, "u1", 1) == Rejected(Rejection.USER_LIMIT_REACHED)


async def test_cancel_returns_units_at_once_and_is_idempotent(store: SaleStore) -> None:
    sale = await new_sale(store, stock=1, per_user_limit=1)
    order_id = await reserve(store, sale.sale_id, "u1")
    assert await store.purchase(sale.sale_id, "u2", 1) == Rejected(Rejection.SOLD_OUT)
    assert await store.cancel(order_id) == Settled("cancelled", replayed=False)
    assert await store.cancel(order_id) == Settled("cancelled", replayed=True)
    assert await store.confirm(order_id) == Rejected(Rejection.ORDER_NOT_PENDING)
    assert await stock_left(store, sale.sale_id) == 1
    # Both the unit and the user's allowance came back.
    assert isinstance(await store.purchase(sale.sale_id, "u1", 1), Reservation)


async def test_unknown_orders_are_not_found(store: SaleStore) -> None:
    sale = await new_sale(store)
    missing = f"{(await reserve(store, sale.sale_id, 'u1')).split('-')[0]}-ffffffffffffffffffff"
    assert await store.confirm(missing) == Rejected(Rejection.NOT_FOUND)
    assert await store.cancel("zzzzzzzzzz-00") == Rejected(Rejection.NOT_FOUND)


async def redis_time_reaches(redis: Redis, moment_ms: int, *, interval: float) -> None:
    async def reached() -> bool:
        return await redis_now_ms(redis) >= moment_ms

    await eventually(reached, within=5, what="Redis time to reach the moment", interval=interval)


async def test_confirm_after_expiry_expires_it_and_gives_stock_back(
    store: SaleStore, redis: Redis
) -> None:
    sale = await new_sale(store, stock=2, hold_seconds=1)
    order_id = await reserve(store, sale.sale_id, "u1")
    order = await store.get_order(order_id)
    assert order is not None
    await redis_time_reaches(redis, order.expires_at, interval=0.02)
    # No sweeper has run: the confirm itself notices the hold is over.
    assert await store.confirm(order_id) == Rejected(Rejection.ORDER_NOT_PENDING)
    expired = await store.get_order(order_id)
    assert expired is not None
    assert expired.status == "expired"
    assert await stock_left(store, sale.sale_id) == 2


async def test_sweeper_releases_due_holds_only(store: SaleStore, redis: Redis) -> None:
    short = await new_sale(store, stock=5, hold_seconds=1, per_user_limit=5)
    long = await new_sale(store, stock=5, hold_seconds=600)
    due = [await reserve(store, short.sale_id, f"s{i}") for i in range(3)]
    kept = await reserve(store, long.sale_id, "l1")
    sweeper = HoldSweeper(redis, Scripts.register(redis), Metrics(), batch_size=2)
    released = 0

    async def all_released() -> bool:
        nonlocal released
        released += await sweeper.sweep_once()
        return released >= 3

    await eventually(all_released, within=5, what="the holds' release (expiry + 4 s)")
    for order_id in due:
        order = await store.get_order(order_id)
        assert order is not None
        assert order.status == "expired"
    still = await store.get_order(kept)
    assert still is not None
    assert still.status == "reserved"
    assert await stock_left(store, short.sale_id) == 5
    assert await redis.zcard(keys.holds(short.sale_id)) == 0
    assert await units_held_in_orders(redis, short.sale_id) == {}


async def test_confirms_racing_several_sweepers_have_one_winner(
    store: SaleStore, redis: Redis
) -> None:
    """200 holds expire within a few milliseconds of each other while 3 sweepers run and
    confirms arrive in waves from just before the expiry to just after it: some confirms win,
    some holds expire, and each order ends exactly one way."""
    sale = await new_sale(store, stock=200, hold_seconds=1, per_user_limit=1)
    # Reserved together (a few script calls), so their expiries are close.
    order_ids = list(
        await asyncio.gather(*(reserve(store, sale.sale_id, f"r{i}") for i in range(200)))
    )
    expiries = []
    for order_id in order_ids:
        order = await store.get_order(order_id)
        assert order is not None
        expiries.append(order.expires_at)
    scripts = Scripts.register(redis)
    sweepers = [HoldSweeper(redis, scripts, Metrics(), batch_size=50) for _ in range(3)]
    await redis_time_reaches(redis, min(expiries) - 150, interval=0.005)

    async def sweep_repeatedly(sweeper: HoldSweeper) -> None:
        for _ in range(60):
            await sweeper.sweep_once()
            await asyncio.sleep(0.005)

    async def confirm_in_waves() -> list[object]:
        """Ten at a time, every 10 ms: about 150 ms before the expiry to 50 ms after it."""
        answers: list[object] = []
        for start in range(0, len(order_ids), 10):
            wave = order_ids[start : start + 10]
            answers += await asyncio.gather(*(store.confirm(o) for o in wave))
            await asyncio.sleep(0.01)
        return answers

    confirming = asyncio.create_task(confirm_in_waves())
    await asyncio.gather(confirming, *(sweep_repeatedly(s) for s in sweepers))
    answers = confirming.result()
    for sweeper in sweepers:  # settle anything still due
        await sweeper.sweep_once()

    confirmed = expired = 0
    for order_id, answer in zip(order_ids, answers, strict=True):
        order = await store.get_order(order_id)
        assert order is not None
        if answer == Settled("confirmed", replayed=False):
            assert order.status == "confirmed"
            confirmed += 1
        else:
            assert answer == Rejected(Rejection.ORDER_NOT_PENDING)
            assert order.status == "expired"
            expired += 1
    assert confirmed > 0, "no confirm beat the expiry: the race was not run"
    assert expired > 0, "every confirm beat the expiry: the race was not run"
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    assert after.stock_left == expired
    assert after.counters["u_confirmed"] == confirmed
    assert after.counters["u_expired"] == expired
    assert after.stock_left + after.counters["u_reserved"] + confirmed == 200
    # Exactly one final event per order.
    events = await redis.xrange(keys.events(sale.sale_id)) or []
    finals = [f["order_id"] for _id, f in events if f and f["type"] != "reserved"]
    assert sorted(finals) == sorted(order_ids)


async def test_a_batch_of_local_counts_is_added_once_however_often_it_is_sent(
    store: SaleStore, redis: Redis
) -> None:
    sale = await new_sale(store)
    scripts = Scripts.register(redis)
    for _ in range(3):  # a lost reply, retried by the client and by the next flush
        assert await scripts.add_counts(sale.sale_id, "batch-1", 5, 3, 2)
    assert await scripts.add_counts(sale.sale_id, "batch-2", 1, 1, 0)
    after = await store.get_sale(sale.sale_id)
    assert after is not None
    counters = after.counters
    assert (counters["attempts"], counters["rejected"], counters["shed"]) == (6, 4, 2)
    assert not await scripts.add_counts("no-such-sale", "batch-1", 1, 1, 0)
