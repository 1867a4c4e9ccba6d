"""`flashsale audit --repair`: after a Redis failover lost acknowledged writes (asynchronous
replication, docs/operations.md), brings Redis level with the order store.

The order store only ever learns an order's state from Redis, so wherever the store is ahead
of Redis - an order Redis lost, or one Redis still has as reserved while the store has it
paid, cancelled or expired - Redis lost it in a failover. Each such order goes through
restore_order.lua, which takes the stock first and refuses what would oversell or pass a
user's cap (those, and orders whose shopper was since told 404, are left to a person).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from flashsale import keys
from flashsale.ids import sale_ref
from flashsale.sinks import OrderSink
from flashsale.store import shards
from flashsale.store.client import queued
from flashsale.store.scripts import Scripts

# What a person must decide, by restore_order.lua's refusal.
_LEFT_TO_A_PERSON = {
    "no_stock": "its units were sold again since; add stock or refund it",
    "over_cap": "its shopper bought again since, up to the cap; refund one of the orders",
    "fenced": "its shopper was told 404 after the loss; refund it if it was paid",
    "no_sale": "the sale itself is gone from Redis",
}


@dataclass
class SaleRepair:
    sale_id: str
    outcomes: Counter[str] = field(default_factory=Counter)
    left: list[str] = field(default_factory=list)

    def render(self) -> str:
        done = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items()))
        lines = [f"repair {self.sale_id}: {done or 'nothing to repair'}"]
        return "\n".join([*lines, *(f"  left: {line}" for line in self.left)])


async def repair_sale(redis: Redis, scripts: Scripts, sink: OrderSink, sale_id: str) -> SaleRepair:
    report = SaleRepair(sale_id)
    stored = await sink.orders_of_sale(sale_id)
    # Each order lives in the bucket its id names (a sale of one shard is its own bucket).
    named = str(await redis.hget(keys.sale(sale_id), "buckets") or "")
    by_ref = {sale_ref(b): b for b in shards.bucket_ids_of(sale_id, {"buckets": named})}
    home = [by_ref.get(o.order_id.partition("-")[0], sale_id) for o in stored]
    pipe = redis.pipeline(transaction=False)
    pairs = list(zip(home, stored, strict=True))
    queued(*(pipe.hget(keys.order(b, o.order_id), "status") for b, o in pairs))
    in_redis = await pipe.execute()
    behind = [
        (bucket, order)
        for bucket, order, status in zip(home, stored, in_redis, strict=True)
        if status is None or (status == "reserved" and order.status.value != "reserved")
    ]
    # Oldest first: when stock is short, the shoppers who bought first get their units back.
    for bucket, order in sorted(behind, key=lambda bo: (bo[1].created_at, bo[1].order_id)):
        outcome, _status = await scripts.restore_order(bucket, order)
        if outcome in _LEFT_TO_A_PERSON:
            report.left.append(
                f"order {order.order_id} ({order.user_id}, {order.status.value} "
                f"x{order.quantity}): {_LEFT_TO_A_PERSON[outcome]}"
            )
        report.outcomes[outcome] += 1
    return report
