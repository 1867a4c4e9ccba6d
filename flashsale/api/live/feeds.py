"""Sales' live streams, one feed per watched sale per process: a feed reads the sale once a
second while anyone watches it and hands every watcher the same encoded event, so a hundred
watchers cost what one does (one Redis round trip a second, one read of the metrics) and
the purchase path pays nothing at all. A watcher too slow to keep up skips to the newest."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from flashsale import keys
from flashsale.api.live.figures import Buckets, Reading, live_event
from flashsale.errors import StoreUnavailableError
from flashsale.metrics import Metrics
from flashsale.store.sales import SaleStore

log = logging.getLogger("flashsale.live")

INTERVAL_SECONDS = 1.0
LATENCY_WINDOW_READINGS = 6  # p50/p99 over the last five seconds
PURCHASE_ROUTE = "/v1/sales/{sale_id}/purchases"
_encode = msgspec.json.Encoder().encode


def sse(event: str, data: bytes, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + data + b"\n\n"


class Feed:
    """The newest event of one sale, numbered; watchers wait for a number past theirs."""

    def __init__(self) -> None:
        self.number = 0
        self.latest = b""
        self.kind = ""  # the latest event's name: sale, unavailable or gone
        self.finished = False
        self.watchers = 0
        self._changed = asyncio.Event()

    def publish(self, kind: str, data: bytes, *, last: bool = False) -> None:
        self.number += 1
        self.kind = kind
        self.latest = sse(kind, data, self.number)
        self.finished = self.finished or last
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        self.finished = True
        self._changed.set()

    async def after(self, seen: int) -> tuple[int, bytes] | None:
        """The newest event once it is past `seen`; None when the feed is over and sent."""
        while self.number <= seen:
            if self.finished:
                return None
            await self._changed.wait()
        return self.number, self.latest


class LiveFeeds:
    def __init__(self, redis: Redis, store: SaleStore, metrics: Metrics) -> None:
        self._redis = redis
        self._store = store
        self._metrics = metrics
        self._feeds: dict[str, tuple[Feed, asyncio.Task[None]]] = {}
        self._engine_cache: tuple[float, Buckets, int] | None = None

    def watching(self, sale_id: str) -> int:
        entry = self._feeds.get(sale_id)
        return entry[0].watchers if entry else 0

    def feeds_open(self) -> int:
        """Sales being read for someone (each costs one reading a second)."""
        return len(self._feeds)

    @asynccontextmanager
    async def watch(self, sale_id: str) -> AsyncIterator[Feed]:
        entry = self._feeds.get(sale_id)
        if entry is None:
            feed = Feed()
            task = asyncio.create_task(self._follow(sale_id, feed), name=f"live-{sale_id}")
            entry = self._feeds[sale_id] = (feed, task)
        feed = entry[0]
        feed.watchers += 1
        try:
            yield feed
        finally:
            feed.watchers -= 1
            if feed.watchers == 0 and self._feeds.get(sale_id) is entry:
                del self._feeds[sale_id]
                entry[1].cancel()

    async def close(self) -> None:
        """Ends every stream (the app is stopping): watchers get what they have, then EOF."""
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed, task in feeds:
            feed.close()
            task.cancel()
        await asyncio.gather(*(task for _feed, task in feeds), return_exceptions=True)

    async def _follow(self, sale_id: str, feed: Feed) -> None:
        loop = asyncio.get_running_loop()
        window: collections.deque[Reading] = collections.deque(maxlen=LATENCY_WINDOW_READINGS)
        started = loop.time()
        while True:
            try:
                reading = await self._read(sale_id, loop.time())
            except (StoreUnavailableError, RedisError, OSError) as exc:
                feed.publish("unavailable", _encode({"detail": f"Redis is not answering: {exc}"}))
            except Exception:
                # A bug must not leave its watchers waiting for a first event forever.
                log.exception("reading sale %s for its live stream failed", sale_id)
                feed.publish("unavailable", _encode({"detail": "the engine could not read it"}))
            else:
                if reading is None:
                    gone = {"detail": f"no sale with id {sale_id!r}"}
                    feed.publish("gone", _encode(gone), last=True)
                    return
                window.append(reading)
                feed.publish("sale", _encode(live_event(list(window))))
            # The next beat of the second from the first reading: a slow read neither drifts
            # the beat nor is followed by a reading at once to catch up.
            beat = int((loop.time() - started) / INTERVAL_SECONDS) + 1
            await asyncio.sleep(max(0.0, started + beat * INTERVAL_SECONDS - loop.time()))

    async def _read(self, sale_id: str, at: float) -> Reading | None:
        sale = await self._store.get_sale(sale_id)
        if sale is None:
            return None
        backlog = await self._backlog(sale_id)
        latency, breaker = self._engine(at)
        return Reading(at=at, sale=sale, latency=latency, breaker=breaker, backlog=backlog)

    async def _backlog(self, sale_id: str) -> int:
        """Events of the sale's streams (its buckets' too) the order store has not taken:
        not yet delivered to the worker (lag) plus delivered and not acknowledged."""
        total = 0
        for stream_of in await self._store.buckets_of(sale_id):
            try:
                groups = await self._redis.xinfo_groups(keys.events(stream_of))
            except ResponseError:
                continue  # no stream yet: nothing was ever queued
            for group in groups:
                if _text(group.get("name")) == keys.ORDER_STORE_GROUP:
                    total += int(group.get("pending") or 0) + int(group.get("lag") or 0)
        return total

    def _engine(self, at: float) -> tuple[Buckets, int]:
        """The purchase latency histogram and the breaker, summed over the processes; read
        once per half second for all the feeds of this process."""
        cached = self._engine_cache
        if cached is not None and at - cached[0] < INTERVAL_SECONDS / 2:
            return cached[1], cached[2]
        latency: list[tuple[float, float]] = []
        breaker = 0
        for family in self._metrics.families():
            if family.name == "flashsale_http_request_seconds":
                latency = [
                    (float(s.labels["le"]), s.value)
                    for s in family.samples
                    if s.name.endswith("_bucket") and s.labels.get("route") == PURCHASE_ROUTE
                ]
            elif family.name == "flashsale_redis_breaker_state":
                breaker = max((int(s.value) for s in family.samples), default=0)
        buckets = tuple(sorted(latency))
        self._engine_cache = (at, buckets, breaker)
        return buckets, breaker


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
