"""`flashsale audit`: checks API.md's invariants against Redis and the order store."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from flashsale import keys
from flashsale.ids import sale_ref
from flashsale.records import OrderRecord
from flashsale.sinks import OrderSink
from flashsale.store import shards
from flashsale.store.client import queued

_STATES = ("reserved", "confirmed", "cancelled", "expired")
_ADDRESS = keys.ADDRESS_FIELD_PREFIX


@dataclass
class SaleAudit:
    sale_id: str
    stock_total: int = 0
    stock_left: int = 0
    units: Counter[str] = field(default_factory=Counter)
    orders_in_redis: int = 0
    orders_in_store: int = 0
    in_flight: int = 0
    violations: list[str] = field(default_factory=list)


async def audit_sale(redis: Redis, sink: OrderSink, sale_id: str) -> SaleAudit:
    sale = {str(k): str(v) for k, v in (await redis.hgetall(keys.sale(sale_id))).items()}
    stored = {o.order_id: o for o in await sink.orders_of_sale(sale_id)}
    if not shards.sharded(sale):
        return await _audit_bucket(redis, sale_id, sale, stored)
    return await _audit_sharded(redis, sale_id, sale, stored, shards.bucket_ids_of(sale_id, sale))


async def _audit_sharded(
    redis: Redis,
    sale_id: str,
    sale: dict[str, str],
    stored: dict[str, OrderRecord],
    bucket_ids: list[str],
) -> SaleAudit:
    """Each bucket against its own orders, then the sums: the buckets' totals add up to the
    sale's, and every stored order belongs to a bucket."""
    report = SaleAudit(sale_id, stock_total=int(sale["stock_total"]))
    by_ref = {sale_ref(b): b for b in bucket_ids}
    mine: dict[str, dict[str, OrderRecord]] = {b: {} for b in bucket_ids}
    for order_id, order in stored.items():
        bucket = by_ref.get(order_id.partition("-")[0])
        if bucket is None:
            report.violations.append(f"invariant 3: stored order {order_id} is in no bucket")
        else:
            mine[bucket][order_id] = order
    bucket_totals = 0
    for bucket in bucket_ids:
        fields = {str(k): str(v) for k, v in (await redis.hgetall(keys.sale(bucket))).items()}
        part = await _audit_bucket(redis, bucket, fields, mine[bucket])
        bucket_totals += part.stock_total
        report.stock_left += part.stock_left
        report.units.update(part.units)
        report.orders_in_redis += part.orders_in_redis
        report.orders_in_store += part.orders_in_store
        report.in_flight += part.in_flight
        report.violations += [f"bucket {bucket}: {v}" for v in part.violations]
    if bucket_totals != report.stock_total:
        report.violations.append(
            f"invariant 1: the buckets' stock_total add up to {bucket_totals}, "
            f"the sale's is {report.stock_total}"
        )
    return report


async def _audit_bucket(
    redis: Redis, sale_id: str, sale: dict[str, str], stored: dict[str, OrderRecord]
) -> SaleAudit:
    """One sale's checks, or one bucket's: `stored` is what the order store has of it."""
    report = SaleAudit(sale_id)
    if not sale:
        report.violations.append("no such sale in Redis")
        return report
    report.stock_total, report.stock_left = int(sale["stock_total"]), int(sale["stock_left"])
    orders = await _redis_orders(redis, sale_id)
    report.orders_in_redis = len(orders)
    held: Counter[str] = Counter()
    unpaid_by_address: Counter[str] = Counter()
    for order in orders.values():
        report.units[order["status"]] += int(order["quantity"])
        if order["status"] in ("reserved", "confirmed"):
            held[order["user_id"]] += int(order["quantity"])
        if order["status"] == "reserved" and order.get("address"):
            unpaid_by_address[_ADDRESS + order["address"]] += int(order["quantity"])

    # 1. Never oversold. A bucket's units lent to another bucket (and not given back) are
    #    still in its total; units it borrowed are not (lua/take_stock.lua).
    moved = int(sale.get("lent", "0")) - int(sale.get("borrowed", "0"))
    counted = report.stock_left + report.units["reserved"] + report.units["confirmed"] + moved
    if counted != report.stock_total or report.stock_left < 0:
        report.violations.append(
            f"invariant 1: stock_left {report.stock_left} + reserved {report.units['reserved']} "
            f"+ confirmed {report.units['confirmed']} + lent-borrowed {moved} "
            f"!= stock_total {report.stock_total}"
        )
    for state in _STATES:
        if int(sale.get(f"u_{state}", 0)) != report.units[state]:
            report.violations.append(
                f"invariant 1: the sale's {state} counter says {sale.get(f'u_{state}')}, "
                f"its orders add up to {report.units[state]}"
            )
    # 2. Nobody above the cap (the highest the operator ever set).
    cap = int(sale.get("peak_per_user_limit", sale["per_user_limit"]))
    for user, units in held.items():
        if units > cap:
            report.violations.append(f"invariant 2: user {user} holds {units} > {cap} units")
    recorded = {str(k): int(v) for k, v in (await redis.hgetall(keys.held(sale_id))).items()}
    by_user = {k: n for k, n in recorded.items() if n and not k.startswith(_ADDRESS)}
    if by_user != dict(held):
        report.violations.append("invariant 2: the per-user holdings disagree with the orders")
    # The holds_per_address cap counts what the reserved orders under it add up to.
    by_address = {k: n for k, n in recorded.items() if n and k.startswith(_ADDRESS)}
    if by_address != dict(unpaid_by_address):
        report.violations.append(
            "holds_per_address: the unpaid units per address disagree with the reserved orders"
        )
    # 3. Every 201 in the store exactly once, in the state Redis has.
    in_flight = await _orders_in_flight(redis, sale_id)
    report.in_flight = len(in_flight)
    report.orders_in_store = len(stored)
    for order_id, order in orders.items():
        if order_id in in_flight:
            continue
        row = stored.get(order_id)
        if row is None:
            report.violations.append(f"invariant 3: order {order_id} is not in the order store")
        elif (row.status.value, row.quantity, row.user_id) != (
            order["status"], int(order["quantity"]), order["user_id"],
        ):  # fmt: skip
            report.violations.append(
                f"invariant 3: order {order_id} is {order['status']} x{order['quantity']} "
                f"in Redis but {row.status.value} x{row.quantity} in the store"
            )
    for order_id in stored.keys() - orders.keys():
        report.violations.append(f"invariant 3: stored order {order_id} has no 201 in Redis")
    # 4. A retried request never took stock twice.
    keyed = Counter(
        (o["user_id"], o["idempotency_key"]) for o in orders.values() if o.get("idempotency_key")
    )
    for (user, key), count in keyed.items():
        if count > 1:
            report.violations.append(
                f"invariant 4: {count} orders for user {user} under Idempotency-Key {key!r}"
            )
    # 5. A unit held for an attempt the engine settled as never made would be one its shopper
    #    was told (404) they did not get. (What clients were told is the history checker's
    #    side of this invariant; the server sees the fences it set.)
    pipe = redis.pipeline(transaction=False)
    queued(*(pipe.exists(keys.fence(sale_id, order_id)) for order_id in orders))
    for (order_id, order), fenced in zip(orders.items(), await pipe.execute(), strict=True):
        if fenced:
            report.violations.append(
                f"invariant 5: order {order_id} is {order['status']} x{order['quantity']}, "
                "yet its attempt was settled as never made (fenced, answered 404)"
            )
    return report


async def _redis_orders(redis: Redis, sale_id: str) -> dict[str, dict[str, str]]:
    order_ids = sorted(str(o) for o in await redis.smembers(keys.orders(sale_id)))
    pipe = redis.pipeline(transaction=False)
    queued(*(pipe.hgetall(keys.order(sale_id, order_id)) for order_id in order_ids))
    rows = await pipe.execute()
    return {
        order_id: {str(k): str(v) for k, v in row.items()}
        for order_id, row in zip(order_ids, rows, strict=True)
    }


async def _orders_in_flight(redis: Redis, sale_id: str) -> set[str]:
    """Orders with events still in the stream: the store may not have their last state yet."""
    entries = await redis.xrange(keys.events(sale_id)) or []
    return {str(fields["order_id"]) for _id, fields in entries if fields and "order_id" in fields}


def render(reports: list[SaleAudit]) -> str:
    header = (
        f"{'sale':<24} {'total':>7} {'left':>7} {'reserved':>9} {'confirmed':>9} "
        f"{'cancelled':>9} {'expired':>8} {'orders':>7} {'stored':>7} {'in-flight':>9} "
        f"{'violations':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        lines.append(
            f"{r.sale_id[:24]:<24} {r.stock_total:>7} {r.stock_left:>7} "
            f"{r.units['reserved']:>9} {r.units['confirmed']:>9} {r.units['cancelled']:>9} "
            f"{r.units['expired']:>8} {r.orders_in_redis:>7} {r.orders_in_store:>7} "
            f"{r.in_flight:>9} {len(r.violations):>10}"
        )
    for r in reports:
        lines += [f"VIOLATION {r.sale_id}: {v}" for v in r.violations]
    total = sum(len(r.violations) for r in reports)
    in_flight = sum(r.in_flight for r in reports)
    verdict = "audit clean" if total == 0 else f"audit FAILED: {total} violation(s)"
    if in_flight:
        verdict += f"; {in_flight} order(s) still on their way to the order store"
    lines.append(verdict)
    return "\n".join(lines)
