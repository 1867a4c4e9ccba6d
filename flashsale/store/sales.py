"""The engine's Redis state behind methods that return values or raise
StoreUnavailableError: state changes go through the typed scripts, reads are plain commands."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from flashsale import keys
from flashsale.errors import StoreUnavailableError
from flashsale.ids import new_order_id, sale_ref
from flashsale.records import (
    NewSale,
    OrderRecord,
    OrderStatus,
    QueueCounts,
    SaleChange,
    SaleRecord,
    WaitingRoom,
)
from flashsale.store import sharded, shards
from flashsale.store.active_sales import ActiveSales
from flashsale.store.batcher import PurchaseBatcher
from flashsale.store.breaker import CircuitBreaker
from flashsale.store.client import is_cluster, queued
from flashsale.store.dead_letters import DeadLetters
from flashsale.store.guard import RedisGuard
from flashsale.store.outcomes import (
    Attempt,
    PurchaseOutcome,
    Rejected,
    Rejection,
    SettleOutcome,
)
from flashsale.store.scripts import Scripts

_COUNTER_FIELDS = (
    "attempts", "rejected", "shed",
    "u_reserved", "u_confirmed", "u_cancelled", "u_expired",
    "o_reserved", "o_confirmed", "o_cancelled", "o_expired",
)  # fmt: skip


class SaleStore:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        idempotency_ttl_seconds: int,
        max_backlog: int = 0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._idempotency_ttl_ms = idempotency_ttl_seconds * 1000
        self._max_backlog = max_backlog
        self._guard = RedisGuard(breaker)
        self._batcher: PurchaseBatcher | None = None
        self._sale_of_ref: dict[str, str] = {}
        self._buckets: dict[str, list[str]] = {}
        self.active = ActiveSales(redis, scripts)
        self.dead_letters = DeadLetters(redis, scripts, self.active, self._guard)

    def use_batcher(self, batcher: PurchaseBatcher) -> None:
        """Purchases from now on go through `batcher` (which calls purchase_batch)."""
        self._batcher = batcher

    async def probe(self) -> int:
        """A real script round trip; returns the Redis server's time in ms."""
        async with self._guard():
            return await self._scripts.probe()

    async def create_sale(self, sale_id: str, sale: NewSale) -> SaleRecord | Rejected:
        creation_id = secrets.token_hex(8)  # named before the call: a resent call is known
        async with self._guard():
            if not await self._claim_ref(sale_id):
                return Rejected(Rejection.SALE_EXISTS)
            bucket_ids: list[str] = []
            if sale.shards > 1:
                bucket_ids = shards.candidate_buckets(sale_id, sale.shards, self._slot_owner)
                # The buckets first: a sale whose hash exists has every bucket it names.
                for bucket_id, bucket in zip(bucket_ids, sharded.bucket_sales(sale), strict=True):
                    if not await self._claim_ref(bucket_id):
                        return Rejected(Rejection.SALE_EXISTS)
                    await self.active.add(bucket_id)
                    refused = await self._scripts.create_sale(
                        bucket_id, sale_ref(bucket_id), bucket, creation_id
                    )
                    if refused:
                        return refused
            await self._redis.sadd(keys.SALES_INDEX, sale_id)
            await self.active.add(sale_id)
            refused = await self._scripts.create_sale(
                sale_id, sale_ref(sale_id), sale, creation_id, bucket_ids
            )
        return refused or await self._read_sale_or_fail(sale_id)

    def _slot_owner(self, key: str) -> str:
        """The node serving `key`: on a cluster, the primary of its slot; else the one Redis
        (every key its own "owner", so that any ids will do)."""
        if not is_cluster(self._redis):
            return key
        node = cast(RedisCluster, self._redis).get_node_from_key(key)
        return node.name if node is not None else key

    async def _claim_ref(self, sale_id: str) -> bool:
        """Maps the sale's short ref (in its order ids) to it; False if another sale has it."""
        ref_key = keys.sale_ref(sale_ref(sale_id))
        if await self._redis.set(ref_key, sale_id, nx=True):
            return True
        # Two ids sharing a 50-bit ref: astronomically rare, but never silent.
        return bool(await self._redis.get(ref_key) == sale_id)

    async def buckets_of(self, sale_id: str) -> list[str]:
        """The buckets holding the sale's stock (the sale alone when it is not sharded);
        they never change."""
        known = self._buckets.get(sale_id)
        if known is None:
            async with self._guard():
                found = await self._redis.hmget(keys.sale(sale_id), "shards", "buckets")
            if found[0] is None:
                return [sale_id]  # no such sale (yet): not remembered
            known = self._buckets[sale_id] = shards.bucket_ids_of(
                sale_id, {"buckets": str(found[1] or "")}
            )
        return known

    def known_bucket_for(self, sale_id: str, user_id: str) -> str:
        """The bucket that serves this user, as far as this process knows: the sale itself
        until it has learnt otherwise (a purchase sent there answers `sharded`)."""
        return shards.home_bucket(self._buckets.get(sale_id) or [sale_id], user_id)

    async def learn_buckets(self, sale_id: str) -> None:
        self._buckets.pop(sale_id, None)
        await self.buckets_of(sale_id)

    async def get_sale(self, sale_id: str) -> SaleRecord | None:
        async with self._guard():
            now, fields = await self._scripts.read_sale(sale_id)
            if shards.sharded(fields):
                [fields] = await self._summed([(sale_id, fields)])
        if not fields:
            return None
        return _sale_record(sale_id, fields, now)

    async def _summed(self, sales: list[tuple[str, dict[str, str]]]) -> list[dict[str, str]]:
        """Each sale's hash, with a sharded one's units summed over its buckets."""
        named = {sid: shards.bucket_ids_of(sid, f) if shards.sharded(f) else [] for sid, f in sales}
        pipe = self._redis.pipeline(transaction=False)
        queued(*(pipe.hgetall(keys.sale(b)) for sid, _f in sales for b in named[sid]))
        rows = iter(await pipe.execute())
        return [
            sharded.summed(f, [next(rows) for _ in named[sid]]) if named[sid] else f
            for sid, f in sales
        ]

    async def list_sales(self) -> list[SaleRecord]:
        async with self._guard():
            sale_ids = await self._sale_ids()
            pipe = self._redis.pipeline(transaction=False)
            queued(*(pipe.hgetall(keys.sale(sale_id)) for sale_id in sale_ids))
            rows = await self._summed(list(zip(sale_ids, await pipe.execute(), strict=True)))
            # One clock for the listing (on a cluster, one node's: NTP keeps them within
            # milliseconds, and each script judges a window by its own node's clock anyway).
            now = await self._scripts.probe()
        # An id indexed by a create that then lost its race or crashed has no hash: skip it.
        return [_sale_record(sid, f, now) for sid, f in zip(sale_ids, rows, strict=True) if f]

    async def patch_sale(
        self,
        sale_id: str,
        change: SaleChange,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> SaleRecord | Rejected:
        """Applies the change once: under the operator's Idempotency-Key when given (the
        same key with another body is refused), else under an id named for this call."""
        change_id = f"key:{idempotency_key}" if idempotency_key else secrets.token_hex(8)
        bucket_ids = await self.buckets_of(sale_id)
        many = len(bucket_ids) > 1
        if many and (change.holds_per_address is not None or change.waiting_room):
            return Rejected(Rejection.NOT_FOR_SHARDS)
        # The buckets first, each under an id of its own derived from the change's (a retry
        # applies what is missing), then the sale's own hash (its total, its settings).
        parts = sharded.bucket_changes(change, len(bucket_ids))
        targets = list(zip(bucket_ids, parts, strict=True)) if many else []
        async with self._guard():
            for index, (target, part) in enumerate([*targets, (sale_id, change)]):
                part_id = f"{change_id}:{index}" if target != sale_id else change_id
                refused = await self._scripts.patch_sale(target, part, part_id, fingerprint)
                if refused is not None:
                    return refused
                await self.active.add(target)  # it may have reopened a retired sale
        return await self._read_sale_or_fail(sale_id)

    async def end_sale(self, sale_id: str) -> SaleRecord | Rejected:
        bucket_ids = await self.buckets_of(sale_id)
        async with self._guard():
            for target in [*(bucket_ids if len(bucket_ids) > 1 else []), sale_id]:
                refused = await self._scripts.end_sale(target)
                if refused is not None:
                    return refused
        return await self._read_sale_or_fail(sale_id)

    async def purchase(
        self,
        sale_id: str,
        user_id: str,
        quantity: int,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        order_id: str | None = None,
        address: str = "",
    ) -> PurchaseOutcome:
        """One attempt. `order_id` names it: calling again with the same id takes nothing twice."""
        attempt = self.attempt(sale_id, user_id, quantity, idempotency_key, fingerprint, address)
        if order_id is not None:
            attempt.order_id = order_id
        return await self.submit(sale_id, attempt)

    @staticmethod
    def attempt(
        sale_id: str,
        user_id: str,
        quantity: int,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        address: str = "",
        *,
        queue_pass: bool = False,
    ) -> Attempt:
        """A new attempt, named (its order id) before anything is sent."""
        return Attempt(
            order_id=new_order_id(sale_id),
            user_id=user_id,
            quantity=quantity,
            idempotency_key=idempotency_key or "",
            fingerprint=fingerprint if idempotency_key else "",
            address=address,
            queue_pass=queue_pass,
        )

    async def submit(self, sale_id: str, attempt: Attempt) -> PurchaseOutcome:
        """Sends the attempt (batched when a batcher is in use). Its `sent` and `finished`
        say, whatever becomes of the caller, whether it may have reached Redis."""
        if self._batcher is not None:
            return await self._batcher.submit(sale_id, attempt)
        try:
            async with self._guard():
                attempt.sent = True
                return await self._scripts.purchase(
                    sale_id, attempt, self._idempotency_ttl_ms, self._max_backlog
                )
        finally:
            attempt.finished = True

    async def settle_attempt(self, order_id: str) -> OrderRecord | None:
        """An attempt whose outcome was never learnt: its order if it took effect, else None,
        and then it never will (fenced)."""
        sale_id = await self.sale_of_order(order_id)
        if sale_id is None:
            return None  # no such sale: nothing can ever land
        async with self._guard():
            status = await self._scripts.settle_attempt(sale_id, order_id)
        return None if status is None else await self.get_order(order_id)

    async def stored_answer(self, sale_id: str, attempt: Attempt) -> PurchaseOutcome:
        """The first answer to the attempt's Idempotency-Key, if Redis has one; else sold_out,
        with nothing written or taken (for a sale the process knows is sold out)."""
        async with self._guard():
            return await self._scripts.purchase(
                sale_id, attempt, self._idempotency_ttl_ms, self._max_backlog, replay_only=True
            )

    async def purchase_batch(
        self, sale_id: str, attempts: Sequence[Attempt]
    ) -> list[PurchaseOutcome]:
        """Several attempts on one sale in one script call, decided in order."""
        async with self._guard():
            return await self._scripts.purchase_batch(
                sale_id, attempts, self._idempotency_ttl_ms, self._max_backlog
            )

    async def confirm(self, order_id: str) -> SettleOutcome:
        return await self._settle(order_id, self._scripts.confirm)

    async def cancel(self, order_id: str) -> SettleOutcome:
        return await self._settle(order_id, self._scripts.cancel)

    async def _settle(
        self, order_id: str, script: Callable[[str, str], Awaitable[SettleOutcome]]
    ) -> SettleOutcome:
        sale_id = await self.sale_of_order(order_id)
        if sale_id is None:
            return Rejected(Rejection.NOT_FOUND)
        async with self._guard():
            return await script(sale_id, order_id)

    async def sale_of_order(self, order_id: str) -> str | None:
        """The sale an order id belongs to, from the ref it starts with."""
        ref, _, _ = order_id.partition("-")
        sale_id = self._sale_of_ref.get(ref)
        if sale_id is None:
            async with self._guard():
                owner = await self._redis.get(keys.sale_ref(ref))
            if owner is None:
                return None
            # A ref never moves to another sale, so the mapping can be kept for good.
            sale_id = self._sale_of_ref[ref] = str(owner)
        return sale_id

    async def get_order(self, order_id: str) -> OrderRecord | None:
        sale_id = await self.sale_of_order(order_id)
        if sale_id is None:
            return None
        async with self._guard():
            fields = await self._redis.hgetall(keys.order(sale_id, order_id))
        if not fields:
            return None
        return OrderRecord(
            order_id=order_id,
            sale_id=keys.parent_sale(sale_id),  # a bucket's order is its sale's
            user_id=str(fields["user_id"]),
            quantity=int(fields["quantity"]),
            status=OrderStatus(str(fields["status"])),
            created_at=int(fields["created_at"]),
            expires_at=int(fields["expires_at"]),
        )

    async def _sale_ids(self) -> list[str]:
        return sorted(str(m) for m in await self._redis.smembers(keys.SALES_INDEX))

    async def _read_sale_or_fail(self, sale_id: str) -> SaleRecord:
        sale = await self.get_sale(sale_id)
        if sale is None:  # only if someone deletes keys by hand between two calls
            raise StoreUnavailableError(f"sale {sale_id} vanished from Redis")
        return sale


def _sale_record(sale_id: str, fields: dict[str, str], now: int) -> SaleRecord:
    return SaleRecord(
        sale_id=sale_id,
        sku=fields["sku"],
        name=fields["name"],
        ref=fields["ref"],
        stock_total=int(fields["stock_total"]),
        stock_left=int(fields["stock_left"]),
        starts_at=int(fields["starts_at"]),
        ends_at=int(fields["ends_at"]),
        ended_at=int(fields["ended_at"]),
        paused=fields["paused"] == "1",
        per_user_limit=int(fields["per_user_limit"]),
        hold_seconds=int(fields["hold_seconds"]),
        holds_per_address=int(fields.get("holds_per_address", "0")) or None,
        counters={name: int(fields.get(name, "0")) for name in _COUNTER_FIELDS},
        read_at=now,
        shed_by={
            name.removeprefix(keys.SHED_FIELD_PREFIX): int(n)
            for name, n in fields.items()
            if name.startswith(keys.SHED_FIELD_PREFIX)
        },
        waiting_room=WaitingRoom(
            enabled=fields.get("wr_enabled") == "1",
            admit_per_second=float(fields.get("wr_rate", "0")) or None,
            token_ttl_seconds=int(fields.get("wr_token_ttl", "120")),
            queue_opens_seconds=int(fields.get("wr_opens_ms", "900000")) // 1000,
        ),
        queue=QueueCounts(
            waiting=int(fields.get("wr_joined", "0"))
            - int(fields.get("wr_admitted", "0"))
            - int(fields.get("wr_expired", "0")),
            admitted=int(fields.get("wr_admitted", "0")),
        ),
    )
