"""The order queue against real Redis and real order stores (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from flashsale import keys
from flashsale.events import OrderEvent
from flashsale.metrics import Metrics
from flashsale.records import OrderStatus
from flashsale.settings import Settings
from flashsale.sinks import OrderSink
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from flashsale.worker.audit import audit_sale
from flashsale.worker.worker import Worker
from tests.helpers import ADMIN
from tests.integration.test_lifecycle_scripts import reserve
from tests.integration.test_purchase_script import new_sale
from tests.polling import eventually


class WorkerKilled(BaseException):
    """Stands for the process dying: nothing in the worker catches it."""


class DiesAfterCommit:
    """The real store, but the worker 'dies' right after the commit, before its XACK."""

    def __init__(self, real: OrderSink) -> None:
        self.real = real
        self.description = real.description

    async def apply(self, events: Sequence[OrderEvent]) -> None:
        await self.real.apply(events)
        raise WorkerKilled

    async def orders_of_sale(self, sale_id: str) -> Any:
        return await self.real.orders_of_sale(sale_id)

    async def close(self) -> None:
        pass


class RefusesOrder(DiesAfterCommit):
    """The real store, except that one order's events always fail with a data error."""

    def __init__(self, real: OrderSink, poisoned_order: str) -> None:
        super().__init__(real)
        self.poisoned_order = poisoned_order

    async def apply(self, events: Sequence[OrderEvent]) -> None:
        if any(e.order_id == self.poisoned_order for e in events):
            raise ValueError("the order store refuses this order")
        await self.real.apply(events)


def worker_settings(settings: Settings, **changes: Any) -> Settings:
    quick = {
        "worker_claim_idle_seconds": 0.2,
        "worker_max_deliveries": 3,
        "worker_backoff_max_seconds": 0.2,
    }
    return settings.replace(**{**quick, **changes})


def make_worker(
    redis: Redis, sink: OrderSink, settings: Settings, consumer: str, **changes: Any
) -> Worker:
    return Worker(
        redis, Scripts.register(redis), sink, worker_settings(settings, **changes), Metrics(),
        consumer=consumer,
    )  # fmt: skip


async def stored_states(sink: OrderSink, sale_id: str) -> dict[str, str]:
    return {o.order_id: o.status.value for o in await sink.orders_of_sale(sale_id)}


async def redis_states(store: SaleStore, order_ids: Sequence[str]) -> dict[str, str]:
    states = {}
    for order_id in order_ids:
        order = await store.get_order(order_id)
        assert order is not None
        states[order_id] = order.status.value
    return states


async def test_every_state_change_reaches_the_store_once(
    store: SaleStore, redis: Redis, sink: OrderSink, settings: Settings
) -> None:
    sale = await new_sale(store, stock=10, per_user_limit=2, hold_seconds=600)
    orders = [await reserve(store, sale.sale_id, f"u{i}") for i in range(6)]
    await store.confirm(orders[0])
    await store.confirm(orders[1])
    await store.cancel(orders[2])
    await store.cancel(orders[3])
    worker = make_worker(redis, sink, settings, "c1")
    _expired, handled = await worker.burst()
    assert handled >= 10  # other tests' sales share this Redis
    assert await stored_states(sink, sale.sale_id) == await redis_states(store, orders)
    report = await audit_sale(redis, sink, sale.sale_id)
    assert report.violations == []
    assert report.in_flight == 0
    assert await redis.xlen(keys.events(sale.sale_id)) == 0  # trimmed once stored


async def test_a_state_only_moves_forward(sink: OrderSink) -> None:
    def event(entry: str, status: OrderStatus) -> OrderEvent:
        return OrderEvent(entry, "o-1", "s-1", "u-1", 2, status, 1_000, 2_000, 1_500)

    await sink.apply([event("1-0", OrderStatus.RESERVED), event("2-0", OrderStatus.CONFIRMED)])
    # A redelivered reservation and a stray late expiry change nothing.
    await sink.apply([event("1-0", OrderStatus.RESERVED)])
    await sink.apply([event("3-0", OrderStatus.EXPIRED)])
    [order] = await sink.orders_of_sale("s-1")
    assert (order.status, order.quantity, order.user_id) == (OrderStatus.CONFIRMED, 2, "u-1")


async def test_a_final_state_that_arrives_first_is_kept(sink: OrderSink) -> None:
    cancelled = OrderEvent("2-0", "o-2", "s-2", "u", 1, OrderStatus.CANCELLED, 1, 2, 1)
    reserved = OrderEvent("1-0", "o-2", "s-2", "u", 1, OrderStatus.RESERVED, 1, 2, 1)
    await sink.apply([cancelled])
    await sink.apply([reserved])
    assert await stored_states(sink, "s-2") == {"o-2": "cancelled"}


async def test_worker_killed_between_commit_and_ack_loses_and_duplicates_nothing(
    store: SaleStore, redis: Redis, sink: OrderSink, settings: Settings
) -> None:
    sale = await new_sale(store, stock=20, per_user_limit=1)
    orders = [await reserve(store, sale.sale_id, f"k{i}") for i in range(8)]
    await store.confirm(orders[0])
    await store.cancel(orders[1])
    doomed = make_worker(redis, DiesAfterCommit(sink), settings, "doomed")
    with pytest.raises(WorkerKilled):
        await doomed.queue.pass_once()
    pending = await redis.xpending(keys.events(sale.sale_id), keys.ORDER_STORE_GROUP)
    assert pending["pending"] == 10  # committed, never acknowledged

    survivor = make_worker(redis, sink, settings, "survivor")

    async def taken_over() -> bool:
        await survivor.queue.pass_once()
        pending = await redis.xpending(keys.events(sale.sale_id), keys.ORDER_STORE_GROUP)
        return int(pending["pending"]) == 0

    await eventually(taken_over, within=10, what="the survivor to take the pending events over")
    assert await stored_states(sink, sale.sale_id) == await redis_states(store, orders)
    assert len(await sink.orders_of_sale(sale.sale_id)) == 8
    assert (await audit_sale(redis, sink, sale.sale_id)).violations == []


async def test_poison_entries_are_dead_lettered_while_the_rest_flows(
    store: SaleStore,
    redis: Redis,
    sink: OrderSink,
    settings: Settings,
    client: TestClient[Any, Any],
) -> None:
    sale = await new_sale(store, stock=20, per_user_limit=1)
    good = [await reserve(store, sale.sale_id, f"p{i}") for i in range(3)]
    await redis.xadd(keys.events(sale.sale_id), {"type": "reserved", "order_id": "garbled"})
    refused = await reserve(store, sale.sale_id, "refused-user")
    more = [await reserve(store, sale.sale_id, f"q{i}") for i in range(2)]
    metrics = Metrics()
    worker = Worker(
        redis, Scripts.register(redis), RefusesOrder(sink, refused), worker_settings(settings),
        metrics, consumer="c1",
    )  # fmt: skip
    await worker.burst()
    dead_count = metrics.registry.get_sample_value("flashsale_order_events_dead_lettered_total")
    assert dead_count == 2

    assert set(await stored_states(sink, sale.sale_id)) == {*good, *more}
    letters = await redis.xrange(keys.dead_letters(sale.sale_id)) or []
    dead = {fields["event.order_id"]: fields for _id, fields in letters if fields}
    assert set(dead) == {"garbled", refused}
    assert int(dead[refused]["deliveries"]) == 3
    assert "refuses" in dead[refused]["error"]
    pending = await redis.xpending(keys.events(sale.sale_id), keys.ORDER_STORE_GROUP)
    assert pending["pending"] == 0

    response = await client.get("/admin/dead-letters", headers=ADMIN)
    listed = [d for d in (await response.json())["dead_letters"] if d["sale_id"] == sale.sale_id]
    assert {d["event"]["order_id"] for d in listed} == {"garbled", refused}


async def test_trimming_never_drops_a_pending_entry(
    store: SaleStore, redis: Redis, sink: OrderSink, settings: Settings
) -> None:
    sale = await new_sale(store, stock=20, per_user_limit=1)
    stream = keys.events(sale.sale_id)
    for i in range(3):
        await reserve(store, sale.sale_id, f"t{i}")
    # A consumer takes the first three and goes silent.
    await redis.xreadgroup(keys.ORDER_STORE_GROUP, "silent", {stream: ">"}, count=3)
    for i in range(3, 5):
        await reserve(store, sale.sale_id, f"t{i}")
    patient = make_worker(redis, sink, settings, "patient", worker_claim_idle_seconds=60.0)
    assert await patient.queue.pass_once() == 2
    assert await redis.xlen(stream) == 5  # the silent consumer's three are kept
    eager = make_worker(redis, sink, settings, "eager", worker_claim_idle_seconds=0.01)
    taken_over = 0

    async def all_taken_over() -> bool:  # once the silent consumer's entries pass the idle bound
        nonlocal taken_over
        taken_over += await eager.queue.pass_once()
        return taken_over >= 3

    await eventually(all_taken_over, within=5, what="the silent consumer's entries", interval=0)
    assert await redis.xlen(stream) == 0
    assert len(await sink.orders_of_sale(sale.sale_id)) == 5
