"""Moves stock between the buckets of a sale of several shards, so that no shopper hears
sold_out for long while another bucket still holds units.

Each user is served by one bucket (flashsale/store/shards.py). A bucket that ran out while
its shoppers still ask for it (its refusals grew since the last look) is given half the units
of the bucket with the most. Units cross slots in two steps, each one script on one slot:
take_stock.lua takes them from the donor and notes them owed, give_stock.lua adds them to the
receiver once, and then the note is dropped. A step that fails is driven again on the next
pass, from the donor's notes; no unit is ever in two buckets' stock, and until it arrives it
is in none (counted as lent, so the audit's sums still hold).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.store.active_sales import ActiveSales
from flashsale.store.client import queued
from flashsale.store.scripts import Scripts

log = logging.getLogger("flashsale.rebalancer")


@dataclass
class _Bucket:
    bucket_id: str
    stock_left: int
    refused: int  # the bucket's `rejected` counter: refusals so far


class Rebalancer:
    def __init__(self, redis: Redis, scripts: Scripts, metrics: Metrics) -> None:
        self._redis = redis
        self._scripts = scripts
        self._metrics = metrics
        self._active = ActiveSales(redis, scripts)
        self._refused_seen: dict[str, int] = {}

    async def pass_once(self) -> int:
        """One look at every active sale of several shards; the units moved."""
        sale_ids = [s for s in await self._active.ids() if keys.BUCKET_SEPARATOR not in s]
        if not sale_ids:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        queued(*(pipe.hget(keys.sale(s), "buckets") for s in sale_ids))
        named = await pipe.execute()
        moved = 0
        for bucket_list in named:
            if bucket_list:
                moved += await self._rebalance(str(bucket_list).split(","))
        if moved:
            self._metrics.stock_rebalanced.inc(moved)
        return moved

    async def _rebalance(self, bucket_ids: list[str]) -> int:
        moved = await self._deliver_owed(bucket_ids)
        pipe = self._redis.pipeline(transaction=False)
        queued(*(pipe.hmget(keys.sale(b), "stock_left", "rejected") for b in bucket_ids))
        rows = await pipe.execute()
        state = [_Bucket(b, int(left or 0), int(refused or 0))
                 for b, (left, refused) in zip(bucket_ids, rows, strict=True)]  # fmt: skip
        for bucket in state:
            asked = bucket.refused > self._refused_seen.get(bucket.bucket_id, bucket.refused)
            self._refused_seen[bucket.bucket_id] = bucket.refused
            if bucket.stock_left > 0 or not asked:
                continue
            donor = max(state, key=lambda b: b.stock_left)
            if donor.stock_left == 0:
                break  # the whole sale is sold out
            units = (donor.stock_left + 1) // 2
            taken = await self._move(donor.bucket_id, bucket.bucket_id, units)
            donor.stock_left -= taken
            bucket.stock_left += taken
            moved += taken
        return moved

    async def _move(self, donor: str, receiver: str, units: int) -> int:
        transfer_id = secrets.token_hex(8)
        taken = await self._scripts.take_stock(donor, transfer_id, receiver, units)
        if taken:
            await self._scripts.give_stock(receiver, transfer_id, taken)
            await self._redis.hdel(keys.transfers(donor), transfer_id)
            log.info("moved %d units from %s to %s", taken, donor, receiver)
        return taken

    async def _deliver_owed(self, bucket_ids: list[str]) -> int:
        """Transfers a pass before this one took from a donor but did not see through."""
        pipe = self._redis.pipeline(transaction=False)
        queued(*(pipe.hgetall(keys.transfers(b)) for b in bucket_ids))
        delivered = 0
        for donor, owed in zip(bucket_ids, await pipe.execute(), strict=True):
            for transfer_id, note in owed.items():
                receiver, _, units = str(note).rpartition("|")
                delivered += await self._scripts.give_stock(receiver, str(transfer_id), int(units))
                await self._redis.hdel(keys.transfers(donor), transfer_id)
        return delivered
