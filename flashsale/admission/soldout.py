"""Per-process sold-out flags: a sold-out sale answers sold_out without touching Redis.

A flag is set when Redis reports a sale's stock at 0, and cleared when a script announces on
the stock-back channel that units returned (cancel, expiry, add_stock). It also lapses on its
own after `ttl` seconds, so a missed announcement costs at most that long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis

from flashsale import keys
from flashsale.pause import pause

log = logging.getLogger("flashsale.soldout")


class SoldOutFlags:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._until: dict[str, float] = {}

    def is_sold_out(self, sale_id: str) -> bool:
        until = self._until.get(sale_id)
        if until is None:
            return False
        if self._clock() >= until:
            del self._until[sale_id]
            return False
        return True

    def mark(self, sale_id: str) -> None:
        if self._ttl > 0:
            self._until[sale_id] = self._clock() + self._ttl

    def clear(self, sale_id: str) -> None:
        self._until.pop(sale_id, None)


async def listen_for_stock_back(redis: Redis, flags: SoldOutFlags, stop: asyncio.Event) -> None:
    """Clears flags as scripts announce returned stock; resubscribes after a Redis outage."""
    delay = 0.1
    while not stop.is_set():
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.STOCK_BACK_CHANNEL)
            delay = 0.1
            while not stop.is_set():
                message = await pubsub.get_message(timeout=0.5)
                if message is not None:
                    flags.clear(str(message["data"]))
        except Exception as exc:
            log.warning("stock-back subscription lost (%s); flags lapse on their own", exc)
            await pause(delay, stop)
            delay = min(delay * 2, 5.0)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # older redis-py
