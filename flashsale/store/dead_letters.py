"""Order events the order store could not take, kept per sale for a person to look at, and
put back on their streams (`flashsale dead-letters replay`) once the cause is fixed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from flashsale import keys
from flashsale.records import DeadLetter
from flashsale.store.active_sales import ActiveSales
from flashsale.store.client import queued
from flashsale.store.guard import RedisGuard
from flashsale.store.scripts import Scripts


@dataclass(frozen=True)
class Replayed:
    sale_id: str
    dead_letter_id: str
    entry_id: str  # on the sale's events stream


class DeadLetters:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        active: ActiveSales,
        guard: RedisGuard | None = None,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._active = active
        self._guard = guard or RedisGuard(None)

    async def newest(self, limit: int, sale_id: str | None = None) -> list[DeadLetter]:
        """The newest dead letters of one sale or of every sale, newest first."""
        async with self._guard():
            sale_ids = [sale_id] if sale_id else await self._sale_ids()
            pipe = self._redis.pipeline(transaction=False)
            queued(*(pipe.xrevrange(keys.dead_letters(s), count=limit) for s in sale_ids))
            replies = await pipe.execute()
        letters = [
            _dead_letter(sid, str(entry_id), fields)
            for sid, entries in zip(sale_ids, replies, strict=True)
            for entry_id, fields in entries
        ]
        letters.sort(key=lambda letter: _stream_id_key(letter.dead_letter_id), reverse=True)
        return letters[:limit]

    async def replay(self, sale_id: str | None = None) -> list[Replayed]:
        """Every dead letter of one sale or of every sale, back on its stream, oldest first.
        Running it twice replays nothing the second time."""
        replayed = []
        async with self._guard():
            for sid in [sale_id] if sale_id else await self._sale_ids():
                for dead_id, _fields in await self._redis.xrange(keys.dead_letters(sid)) or []:
                    entry_id = await self._scripts.replay_dead_letter(sid, str(dead_id))
                    if entry_id is not None:
                        await self._active.add(sid)  # the worker must visit it again
                        replayed.append(Replayed(sid, str(dead_id), entry_id))
        return replayed

    async def _sale_ids(self) -> list[str]:
        return sorted(str(m) for m in await self._redis.smembers(keys.SALES_INDEX))


def _dead_letter(sale_id: str, dead_letter_id: str, fields: dict[str, Any]) -> DeadLetter:
    return DeadLetter(
        sale_id=sale_id,
        dead_letter_id=dead_letter_id,
        entry_id=str(fields.get("entry_id", "")),
        error=str(fields.get("error", "")),
        deliveries=int(fields.get("deliveries", 0)),
        event={
            str(k).removeprefix("event."): str(v)
            for k, v in fields.items()
            if str(k).startswith("event.")
        },
    )


def _stream_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
