"""The index of sales the background work still visits (the order-stream consumer, the hold
sweeper). A sale joins it when created and leaves it once retired: its window over, no hold
pending, every event taken by the order store. So the worker's idle cost follows the sales in
play, not every sale ever created. Anything that can give a retired sale work again (a window
reopened, a dead letter replayed) clears its mark and puts it back."""

from __future__ import annotations

from redis.asyncio import Redis

from flashsale import keys
from flashsale.store.scripts import Scripts

# Set once the index holds every sale that existed before it did (an engine upgraded from a
# version without it): from then on, creating a sale is what adds it.
SEEDED_MARKER = f"{keys.ACTIVE_SALES}:seeded"


class ActiveSales:
    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def ids(self) -> list[str]:
        return sorted(str(s) for s in await self._redis.smembers(keys.ACTIVE_SALES))

    async def add(self, sale_id: str) -> None:
        await self._redis.sadd(keys.ACTIVE_SALES, sale_id)

    async def seed(self) -> None:
        """Once per Redis: every sale already known starts out active (retirement then
        prunes the finished ones)."""
        if await self._redis.exists(SEEDED_MARKER):
            return
        every = await self._redis.smembers(keys.SALES_INDEX)
        if every:
            await self._redis.sadd(keys.ACTIVE_SALES, *every)
        await self._redis.set(SEEDED_MARKER, 1)

    async def retire_finished(self) -> int:
        """Takes the sales that need no more work out of the index; returns how many."""
        retired = 0
        for sale_id in await self.ids():
            if not await self._scripts.retire_sale(sale_id):
                continue
            await self._redis.srem(keys.ACTIVE_SALES, sale_id)
            # Reopened between the script and the removal: the change cleared the mark (and
            # added the sale back, perhaps before the removal). Put it back.
            if await self._redis.hget(keys.sale(sale_id), "retired") is None:
                await self.add(sale_id)
            else:
                retired += 1
        return retired
