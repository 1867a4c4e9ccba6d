"""`flashsale audit --repair`: after a failover lost writes Redis had acknowledged, Redis is
brought level with the order store - stock first, never selling a unit twice.

A failover that loses writes leaves the promoted replica with an earlier prefix of the
primary's history. The tests make exactly that: they DUMP a sale's keys, go on buying and
paying, then RESTORE the dump (dropping the keys made since), while the order store keeps
what the worker had stored."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.records import NewSale, OrderRecord, OrderStatus
from flashsale.settings import Settings
from flashsale.sinks import OrderSink
from flashsale.store.outcomes import Rejected, Reservation, Settled
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from flashsale.worker.audit import audit_sale
from flashsale.worker.repair import repair_sale
from flashsale.worker.worker import Worker
from tests.integration.test_order_queue import stored_states, worker_settings
from tests.service import run_flashsale

Snapshot = dict[str, bytes]


@pytest.fixture
async def raw_redis(settings: Settings) -> AsyncIterator[Redis]:
    """Bytes in and out, for DUMP and RESTORE."""
    client = Redis.from_url(settings.redis.url)
    yield client
    await client.aclose()


@pytest.fixture
def worker(redis: Redis, sink: OrderSink, settings: Settings) -> Worker:
    return Worker(redis, Scripts.register(redis), sink, worker_settings(settings), Metrics())


async def snapshot(raw: Redis, sale_id: str) -> Snapshot:
    dumped = {}
    async for key in raw.scan_iter(match=f"fs:{{{sale_id}}}:*"):
        value = await raw.dump(key)
        assert value is not None
        dumped[key] = value
    return dumped


async def fail_over_to(raw: Redis, sale_id: str, before: Snapshot) -> None:
    """The sale's keys become what they were at `before`: the writes since are lost."""
    for key in [key async for key in raw.scan_iter(match=f"fs:{{{sale_id}}}:*")]:
        await raw.delete(key)
    for key, dumped in before.items():
        await raw.restore(key, 0, dumped, replace=True)


async def new_sale(store: SaleStore, stock: int, per_user_limit: int = 1) -> str:
    sale_id = f"repair-{secrets.token_hex(4)}"
    now = int(time.time() * 1000)
    sale = NewSale("SKU", "repair", stock, now - 3_600_000, now + 3_600_000, per_user_limit, 600)
    assert not isinstance(await store.create_sale(sale_id, sale), Rejected)
    return sale_id


async def hold(store: SaleStore, sale_id: str, user_id: str) -> str:
    outcome = await store.purchase(sale_id, user_id, 1)
    assert isinstance(outcome, Reservation), outcome
    return outcome.order_id


async def test_lost_holds_come_back_stock_first_and_a_unit_sold_again_is_not_sold_twice(
    store: SaleStore, redis: Redis, raw_redis: Redis, sink: OrderSink, worker: Worker
) -> None:
    sale_id = await new_sale(store, stock=3)
    carol = await hold(store, sale_id, "carol")
    await worker.burst()
    before = await snapshot(raw_redis, sale_id)
    alice, bob = await hold(store, sale_id, "alice"), await hold(store, sale_id, "bob")
    assert await store.confirm(carol) == Settled("confirmed", replayed=False)
    await worker.burst()  # the store has alice, bob, and carol paid

    await fail_over_to(raw_redis, sale_id, before)  # Redis lost all three writes
    dave = await hold(store, sale_id, "dave")  # sold one of the two units lost again
    await worker.burst()
    lost = await audit_sale(redis, sink, sale_id)
    assert len(lost.violations) == 3, lost.violations

    scripts = Scripts.register(redis)
    repair = await repair_sale(redis, scripts, sink, sale_id)
    # Carol's payment is back. One unit is left for the two lost holds (Dave has the other):
    # one of them is back (the older; these two share a millisecond), the other is reported,
    # not restored over the stock.
    assert dict(repair.outcomes) == {"advanced": 1, "restored": 1, "no_stock": 1}
    back = [o for o in (alice, bob) if await store.get_order(o) is not None]
    assert len(back) == 1
    [kept], [unkept] = back, [o for o in (alice, bob) if o not in back]
    assert [line.split()[1] for line in repair.left] == [unkept]
    after = await audit_sale(redis, sink, sale_id)
    assert after.violations == [f"invariant 3: stored order {unkept} has no 201 in Redis"]
    assert (after.stock_left, after.units["reserved"], after.units["confirmed"]) == (0, 2, 1)
    states = {o: (await store.get_order(o)) for o in (kept, carol, dave)}
    assert {o: r.status.value for o, r in states.items() if r} == {
        kept: "reserved", carol: "confirmed", dave: "reserved",
    }  # fmt: skip

    # The restored hold is a hold again: its shopper can pay for it.
    assert await store.confirm(kept) == Settled("confirmed", replayed=False)
    # Repairing again changes nothing.
    sale_before = await redis.hgetall(keys.sale(sale_id))
    again = await repair_sale(redis, scripts, sink, sale_id)
    assert dict(again.outcomes) == {"no_stock": 1}
    assert await redis.hgetall(keys.sale(sale_id)) == sale_before
    await worker.burst()
    assert (await stored_states(sink, sale_id))[kept] == "confirmed"


async def test_a_lost_hold_is_not_restored_past_the_cap_nor_after_its_shopper_heard_404(
    store: SaleStore, redis: Redis, raw_redis: Redis, sink: OrderSink, worker: Worker
) -> None:
    sale_id = await new_sale(store, stock=10)
    before = await snapshot(raw_redis, sale_id)
    erin, frank = await hold(store, sale_id, "erin"), await hold(store, sale_id, "frank")
    await worker.burst()
    await fail_over_to(raw_redis, sale_id, before)
    await hold(store, sale_id, "erin")  # Erin buys again after the loss, up to her cap of 1
    assert await store.settle_attempt(frank) is None  # Frank asks: 404, and it is fenced
    scripts = Scripts.register(redis)
    repair = await repair_sale(redis, scripts, sink, sale_id)
    assert dict(repair.outcomes) == {"over_cap": 1, "fenced": 1}
    assert sorted(line.split()[1] for line in repair.left) == sorted([erin, frank])
    assert await store.get_order(erin) is None
    assert await store.get_order(frank) is None
    sale = await redis.hgetall(keys.sale(sale_id))
    assert int(sale["stock_left"]) == 9  # Erin's second hold only


async def test_the_restore_script_answers_present_no_sale_and_expired(
    store: SaleStore, redis: Redis
) -> None:
    scripts = Scripts.register(redis)
    sale_id = await new_sale(store, stock=5)
    order_id = await hold(store, sale_id, "gina")
    kept = await store.get_order(order_id)
    assert kept is not None
    assert await scripts.restore_order(sale_id, kept) == ("present", "reserved")
    assert (await scripts.restore_order("no-such-sale", kept))[0] == "no_sale"
    # A lost hold whose time ran out meanwhile comes back expired, its unit free.
    now = int(time.time() * 1000)
    stale = OrderRecord(f"{order_id}x", sale_id, "hana", 1, OrderStatus.RESERVED,
                        now - 700_000, now - 100_000)  # fmt: skip
    assert await scripts.restore_order(sale_id, stale) == ("restored", "expired")
    sale = await redis.hgetall(keys.sale(sale_id))
    assert (sale["stock_left"], sale["u_expired"]) == ("4", "1")


async def test_the_audit_command_finds_the_loss_and_its_repair_mends_it(
    store: SaleStore,
    raw_redis: Redis,
    worker: Worker,
    settings: Settings,
    order_store_dsn: str,
    tmp_path: Path,
) -> None:
    sale_id = await new_sale(store, stock=2)
    before = await snapshot(raw_redis, sale_id)
    lost = await hold(store, sale_id, "ivy")
    await worker.burst()
    await fail_over_to(raw_redis, sale_id, before)
    env = {
        "FLASHSALE_REDIS_URL": settings.redis.url,
        "FLASHSALE_ORDERS_DSN": order_store_dsn,
        "FLASHSALE_ADMIN_TOKEN": "not-used-by-the-audit",
    }
    args = ("audit", "--sale", sale_id, "--data-dir", str(tmp_path))

    found = await asyncio.to_thread(run_flashsale, *args, env=env)
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"stored order {lost} has no 201 in Redis" in found.stdout
    repaired = await asyncio.to_thread(run_flashsale, *args, "--repair", env=env)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"repair {sale_id}: 1 restored" in repaired.stdout
    assert (await store.get_order(lost)) is not None
