"""A Jepsen-style history of what clients did and were told, and a checker that holds it
against what Redis and the order store have at the end.

Clients record every operation as it is invoked and how it completed, in Jepsen's terms:

- ok: it happened, and the client was told so (a 201; a 200 from confirm or cancel);
- fail: it certainly did not happen (any refusal: 4xx, 503, 429 - the contract says a shed
  request never reaches the stock);
- info: the client does not know (a 202 pending, a timeout, a cut connection).

The checker follows Jepsen's total-queue checker (`jepsen.checker/total-queue`): a purchase
is an enqueue, an order found at the end is its dequeue, and it reports attempts,
acknowledged, lost, unexpected, duplicated and recovered (unknown, then seen). On top it
checks API.md's invariants from the outside - the six figures that must be 0:

- untold: units held for an order whose id no client was told (invariant 5);
- lost: 201s (and settled 202s, confirms, cancels) whose effect is not there (invariant 3);
- duplicated: orders beyond one per Idempotency-Key, or one key told two order ids (4);
- oversold: units held beyond the stock (1);
- over_cap: users holding more than the sale's cap (2);
- diverged: orders whose final state differs between Redis and the order store (3).

The checker is pure: `final_state()` reads Redis and the store, `check()` compares.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from flashsale import keys
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.client import queued
from tests.polling import eventually

# The engine's HTTP answers are read the same way from a real session or aiohttp's TestClient.
Http = aiohttp.ClientSession | TestClient[Any, Any]


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


@dataclass
class Operation:
    """One client call: a purchase, a confirm, a cancel, or a read of an order."""

    kind: str
    sale_id: str
    user_id: str = ""
    quantity: int = 0
    idempotency_key: str | None = None
    order_id: str | None = None
    invoked_at: float = field(default_factory=time.monotonic)
    completed_at: float | None = None
    outcome: Outcome | None = None
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # For a read: the status it saw ("reserved", ..., "pending", "not_found").
    seen: str | None = None
    # The HTTP answer, as it came (0 and None when none came).
    status: int = 0
    body: Any = None

    @property
    def elapsed(self) -> float:
        assert self.completed_at is not None, "the operation has not completed"
        return self.completed_at - self.invoked_at

    def complete(
        self, status: int, body: Any, headers: Mapping[str, str] | None = None
    ) -> Operation:
        """Classifies an engine answer the way API.md defines it."""
        self.completed_at = time.monotonic()
        self.status, self.body, self.headers = status, body, dict(headers or {})
        answer = body if isinstance(body, dict) else {}
        self.detail = f"{status} {answer.get('code') or answer.get('status') or ''}".strip()
        if self.kind == "read":
            self.outcome = Outcome.OK if status in (200, 404) else Outcome.INFO
            if status == 404:
                self.seen = "not_found"
            elif status == 200:
                self.seen = str(answer.get("status"))
            return self
        if status == 202 and self.kind == "purchase":
            self.outcome, self.order_id = Outcome.INFO, str(answer["order_id"])
        elif status in (200, 201):
            self.outcome = Outcome.OK
            self.order_id = str(answer.get("order_id", self.order_id))
        elif 400 <= status < 600:
            self.outcome = Outcome.FAIL
        else:
            self.outcome = Outcome.INFO
        return self

    def unknown(self, why: BaseException | str) -> Operation:
        """No answer (timeout, connection cut): it may or may not have happened."""
        self.completed_at = time.monotonic()
        self.outcome = Outcome.INFO
        self.detail = why if isinstance(why, str) else type(why).__name__
        return self


class History:
    """Thread-safe: tests record from asyncio tasks and from threads alike."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.operations: list[Operation] = []

    def invoke(self, kind: str, sale_id: str, **fields: Any) -> Operation:
        operation = Operation(kind, sale_id, **fields)
        with self._lock:
            self.operations.append(operation)
        return operation

    def of_sale(self, sale_id: str) -> list[Operation]:
        return [op for op in self.operations if op.sale_id == sale_id]

    def outcomes(self) -> Counter[str]:
        """Operations by kind, outcome and answer: what the load generator actually got."""
        return Counter(
            f"{op.kind} {op.outcome or 'open'} {op.detail}".strip() for op in self.operations
        )

    def pending_order_ids(self) -> list[str]:
        """Order ids told in a 202 that no later read has seen settled."""
        settled = {
            op.order_id
            for op in self.operations
            if op.kind == "read" and op.seen not in (None, "pending")
        }
        return [
            op.order_id
            for op in self.operations
            if op.kind == "purchase" and op.outcome is Outcome.INFO and op.order_id
            if op.order_id not in settled
        ]


@dataclass(frozen=True)
class StoredOrder:
    user_id: str
    quantity: int
    status: str
    idempotency_key: str = ""


@dataclass(frozen=True)
class FinalState:
    """One sale as Redis and the order store have it once everything has settled."""

    sale_id: str
    stock_total: int
    stock_left: int
    per_user_limit: int
    redis_orders: Mapping[str, StoredOrder]
    store_orders: Mapping[str, StoredOrder] | None


_HOLDING = ("reserved", "confirmed")


@dataclass
class Report:
    attempts: int = 0
    acknowledged: int = 0
    unknown: int = 0
    recovered: int = 0
    unexpected: int = 0
    untold: int = 0
    lost: int = 0
    duplicated: int = 0
    oversold: int = 0
    over_cap: int = 0
    diverged: int = 0
    problems: list[str] = field(default_factory=list)

    SIX = ("untold", "lost", "duplicated", "oversold", "over_cap", "diverged")

    @property
    def figures(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.SIX}

    @property
    def valid(self) -> bool:
        return not any(self.figures.values())

    def merge(self, other: Report) -> Report:
        for name in (
            "attempts", "acknowledged", "unknown", "recovered", "unexpected", *self.SIX
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems += other.problems
        return self

    def render(self) -> str:
        jepsen = (
            f"attempts {self.attempts}, acknowledged {self.acknowledged}, unknown "
            f"{self.unknown}, recovered {self.recovered}, unexpected {self.unexpected}"
        )
        six = ", ".join(f"{name} {value}" for name, value in self.figures.items())
        lines = [jepsen, six, *self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"... and {len(self.problems) - 20} more")
        return "\n".join(lines)


def check(history: Iterable[Operation], final: FinalState) -> Report:
    """Holds one sale's operations against its final state."""
    ops = [op for op in history if op.sale_id == final.sale_id]
    purchases = [op for op in ops if op.kind == "purchase"]
    report = Report(attempts=len(purchases))
    reads: dict[str, set[str]] = {}
    for op in ops:
        if op.kind == "read" and op.order_id and op.seen:
            reads.setdefault(op.order_id, set()).add(op.seen)
    orders = final.redis_orders

    def problem(figure: str, text: str) -> None:
        setattr(report, figure, getattr(report, figure) + 1)
        report.problems.append(f"{figure}: {text}")

    # What each client was told. A 202 tells the order id; a later 404 for it takes it back.
    told: set[str] = set()
    for op in purchases:
        if op.order_id is None or op.outcome is Outcome.FAIL:
            continue
        if op.outcome is Outcome.OK:
            report.acknowledged += 1
            told.add(op.order_id)
            if op.order_id not in orders:
                problem("lost", f"201 for {op.order_id} ({op.user_id}), not in Redis")
        elif "not_found" in reads.get(op.order_id, ()):
            found = orders.get(op.order_id)
            if found is not None and found.status not in _HOLDING:  # holding: counted below
                problem("untold", f"{op.order_id} was answered 404, yet is {found.status}")
        else:
            told.add(op.order_id)
            if "reserved" in reads.get(op.order_id, ()) and op.order_id not in orders:
                problem("lost", f"202 {op.order_id} settled reserved, not in Redis")
    # A refusal promises nothing was taken. A keyed press answered with a replay of an order
    # must have a press it replays: another with the key, invoked before this one was
    # answered (concurrent presses count), that was not refused. If every such press was
    # refused, one of those refusals took stock after all; if there is none, the replay
    # claims a request that never was.
    by_key: dict[tuple[str, str], list[Operation]] = {}
    for op in purchases:
        if op.idempotency_key:
            by_key.setdefault((op.user_id, op.idempotency_key), []).append(op)
    for presses in by_key.values():
        for op in presses:
            replayed = op.headers.get("Idempotent-Replayed") == "true"
            if not (replayed and op.outcome is Outcome.OK):
                continue
            answered_at = op.completed_at if op.completed_at is not None else float("inf")
            others = [e for e in presses if e is not op and e.invoked_at < answered_at]
            if all(e.outcome is Outcome.FAIL for e in others):
                before = ", ".join(e.detail for e in others) or "no earlier press"
                problem("untold", f"{op.order_id} replayed for key {op.idempotency_key!r}; "
                        f"before: {before}")  # fmt: skip
    report.unknown = sum(op.outcome is Outcome.INFO for op in purchases)
    report.recovered = sum(op.outcome is Outcome.INFO and op.order_id in orders for op in purchases)
    invoked_users = {op.user_id for op in purchases}
    for order_id, order in orders.items():
        if order.user_id not in invoked_users:
            report.unexpected += 1
        if order.status in _HOLDING and order_id not in told:
            problem("untold", f"{order.quantity} unit(s) held by {order_id} ({order.user_id})")

    # Acknowledged state changes must be the final state (a confirm cannot be undone; a
    # cancel neither).
    for op in ops:
        if op.kind in ("confirm", "cancel") and op.outcome is Outcome.OK and op.order_id:
            wanted = "confirmed" if op.kind == "confirm" else "cancelled"
            found = orders.get(op.order_id)
            if found is None or found.status != wanted:
                problem("lost", f"{op.kind} of {op.order_id} acknowledged, final state "
                        f"{found.status if found else 'missing'}")  # fmt: skip

    # One order per Idempotency-Key, and one order id told per key.
    keyed = Counter((o.user_id, o.idempotency_key) for o in orders.values() if o.idempotency_key)
    for (user, key), count in keyed.items():
        if count > 1:
            problem("duplicated", f"{count} orders for {user} under key {key!r}")
    told_per_key: dict[tuple[str, str], set[str]] = {}
    for op in purchases:
        if op.idempotency_key and op.outcome is Outcome.OK and op.order_id:
            told_per_key.setdefault((op.user_id, op.idempotency_key), set()).add(op.order_id)
    for (user, key), ids in told_per_key.items():
        if len(ids) > 1:
            problem("duplicated", f"{user} was told {len(ids)} order ids under key {key!r}")

    held = sum(o.quantity for o in orders.values() if o.status in _HOLDING)
    over = max(0, final.stock_left + held - final.stock_total) + max(0, -final.stock_left)
    if over:
        report.oversold = over
        report.problems.append(
            f"oversold: stock_left {final.stock_left} + held {held} > {final.stock_total}"
        )
    per_user: Counter[str] = Counter()
    for order in orders.values():
        if order.status in _HOLDING:
            per_user[order.user_id] += order.quantity
    for user, units in per_user.items():
        if units > final.per_user_limit:
            problem("over_cap", f"{user} holds {units} > {final.per_user_limit}")

    if final.store_orders is not None:
        stored = final.store_orders
        for order_id in orders.keys() | stored.keys():
            in_redis, in_store = orders.get(order_id), stored.get(order_id)
            if (
                in_redis is None
                or in_store is None
                or (
                    (in_redis.status, in_redis.quantity, in_redis.user_id)
                    != (in_store.status, in_store.quantity, in_store.user_id)
                )
            ):
                problem("diverged", f"{order_id}: Redis {in_redis}, store {in_store}")
    return report


async def final_state(redis: Redis, sale_id: str, sink: OrderSink | None) -> FinalState:
    """Reads one sale from Redis (its order records, not its counters) and the order store.
    Call it once the worker has drained the sale's events."""
    sale = {str(k): str(v) for k, v in (await redis.hgetall(keys.sale(sale_id))).items()}
    order_ids = sorted(str(o) for o in await redis.smembers(keys.orders(sale_id)))
    pipe = redis.pipeline(transaction=False)
    queued(*(pipe.hgetall(keys.order(sale_id, order_id)) for order_id in order_ids))
    rows = await pipe.execute()
    redis_orders = {}
    for order_id, raw in zip(order_ids, rows, strict=True):
        row = {str(k): str(v) for k, v in raw.items()}
        redis_orders[order_id] = StoredOrder(
            row["user_id"], int(row["quantity"]), row["status"], row.get("idempotency_key", "")
        )
    store_orders = None
    if sink is not None:
        store_orders = {
            o.order_id: StoredOrder(o.user_id, o.quantity, o.status.value)
            for o in await sink.orders_of_sale(sale_id)
        }
    return FinalState(
        sale_id=sale_id,
        stock_total=int(sale["stock_total"]),
        stock_left=int(sale["stock_left"]),
        per_user_limit=int(sale.get("peak_per_user_limit", sale["per_user_limit"])),
        redis_orders=redis_orders,
        store_orders=store_orders,
    )


async def purchase(
    http: Http,
    history: History,
    sale_id: str,
    user_id: str,
    quantity: int = 1,
    idempotency_key: str | None = None,
) -> Operation:
    """A recorded purchase over HTTP; a cut connection or timeout is recorded as unknown."""
    op = history.invoke(
        "purchase", sale_id, user_id=user_id, quantity=quantity, idempotency_key=idempotency_key
    )
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    try:
        async with http.post(
            f"/v1/sales/{sale_id}/purchases",
            json={"user_id": user_id, "quantity": quantity},
            headers=headers,
        ) as response:
            body = await response.json(content_type=None)
            return op.complete(response.status, body, response.headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return op.unknown(exc)


async def read_order(http: Http, history: History, sale_id: str, order_id: str) -> Operation:
    """A recorded read of an order a purchase was told about."""
    read = history.invoke("read", sale_id, order_id=order_id)
    try:
        async with http.get(f"/v1/orders/{order_id}") as response:
            return read.complete(response.status, await response.json(content_type=None))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return read.unknown(exc)


async def settle_pending(http: Http, history: History, within: float = 20) -> None:
    """Reads every order told in a 202 until each has settled (its order, or a 404)."""

    async def all_settled() -> bool:
        unsettled = set(history.pending_order_ids())
        sale_of = {o.order_id: o.sale_id for o in history.operations if o.order_id in unsettled}
        for order_id, sale_id in sale_of.items():
            assert order_id is not None
            await read_order(http, history, sale_id, order_id)
        return not history.pending_order_ids()

    await eventually(all_settled, within=within, what="every 202 to settle", interval=0.2)


async def finish_order(http: Http, history: History, op: Operation, kind: str) -> Operation:
    """A recorded confirm or cancel of the order a purchase was told about."""
    assert op.order_id is not None
    assert kind in ("confirm", "cancel")
    finish = history.invoke(kind, op.sale_id, user_id=op.user_id, order_id=op.order_id)
    try:
        async with http.post(f"/v1/orders/{op.order_id}/{kind}") as response:
            return finish.complete(response.status, await response.json(content_type=None))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return finish.unknown(exc)


async def drained(redis: Redis, sale_id: str) -> bool:
    """Whether the order store's group has taken and acknowledged every event of the sale."""
    for group in await redis.xinfo_groups(keys.events(sale_id)):
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == keys.ORDER_STORE_GROUP:
            return int(group["pending"]) == 0 and int(group.get("lag") or 0) == 0
    return False


async def checked(
    redis_url: str, sink: OrderSink | None, history: History, sale_id: str, within: float = 30
) -> Report:
    """Waits for the worker to drain the sale (when a store is given), then checks it."""
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        if sink is not None:
            await eventually(
                lambda: drained(redis, sale_id), within=within, what="the order store to catch up"
            )
        return check(history.operations, await final_state(redis, sale_id, sink))


async def checked_in_data_dir(
    redis_url: str, data_dir: Path, history: History, sale_id: str
) -> Report:
    """`checked`, against the order store a service keeps in its data dir (SQLite)."""
    sink = open_sink("", data_dir)
    try:
        return await checked(redis_url, sink, history, sale_id)
    finally:
        await sink.close()
