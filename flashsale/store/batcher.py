"""Group commit: purchase attempts on one sale that arrive together go to Redis as one call.

Each sale has a lane. An attempt joins its lane's queue; the queue is sent when it is full,
after `linger` (0: at the end of the current event-loop turn), or as soon as one of the lane's
batches in flight comes back. Under load, batches grow by themselves while Redis works (and
fsyncs) on the previous one, so one fsync serves many purchases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from flashsale.settings import Settings
from flashsale.store.outcomes import Attempt, PurchaseOutcome

RunBatch = Callable[[str, Sequence[Attempt]], Awaitable[list[PurchaseOutcome]]]


@dataclass
class _Queued:
    attempt: Attempt
    future: asyncio.Future[PurchaseOutcome]


@dataclass
class _Lane:
    queue: list[_Queued] = field(default_factory=list)
    in_flight: int = 0
    timer: asyncio.Handle | None = None


class PurchaseBatcher:
    def __init__(
        self,
        run_batch: RunBatch,
        max_size: int,
        linger_seconds: float,
        max_in_flight_per_sale: int,
        on_batch: Callable[[int], None] = lambda _size: None,
        on_dropped: Callable[[int], None] = lambda _count: None,
    ) -> None:
        self._run_batch = run_batch
        self._max_size = max_size
        self._linger = linger_seconds
        self._max_in_flight = max_in_flight_per_sale
        self._on_batch = on_batch
        self._on_dropped = on_dropped
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls,
        run_batch: RunBatch,
        settings: Settings,
        on_batch: Callable[[int], None] = lambda _size: None,
        on_dropped: Callable[[int], None] = lambda _count: None,
    ) -> PurchaseBatcher:
        return cls(
            run_batch,
            max_size=settings.batching.max_size,
            linger_seconds=settings.batching.linger_seconds,
            max_in_flight_per_sale=settings.batching.max_in_flight_per_sale,
            on_batch=on_batch,
            on_dropped=on_dropped,
        )

    async def submit(self, sale_id: str, attempt: Attempt) -> PurchaseOutcome:
        """Resolves with this attempt's own outcome. Cancelling the caller (its deadline)
        before the batch is sent drops the attempt: it never reaches Redis."""
        future: asyncio.Future[PurchaseOutcome] = asyncio.get_running_loop().create_future()
        lane = self._lanes.setdefault(sale_id, _Lane())
        lane.queue.append(_Queued(attempt, future))
        self._schedule(sale_id, lane)
        return await future

    def _schedule(self, sale_id: str, lane: _Lane) -> None:
        if lane.in_flight >= self._max_in_flight:
            return  # the batch coming back sends this queue
        if len(lane.queue) >= self._max_size:
            self._flush(sale_id)
        elif lane.timer is None:
            loop = asyncio.get_running_loop()
            if self._linger > 0:
                lane.timer = loop.call_later(self._linger, self._flush, sale_id)
            else:
                lane.timer = loop.call_soon(self._flush, sale_id)

    def _flush(self, sale_id: str) -> None:
        lane = self._lanes.get(sale_id)
        if lane is None:
            return
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        taken, lane.queue = lane.queue[: self._max_size], lane.queue[self._max_size :]
        live = [q for q in taken if not q.future.done()]
        for queued in live:
            queued.attempt.sent = True
        if len(live) < len(taken):
            self._on_dropped(len(taken) - len(live))
        if live:
            lane.in_flight += 1
            task = asyncio.create_task(self._send(sale_id, lane, live))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if lane.queue:
            self._schedule(sale_id, lane)
        elif lane.in_flight == 0:
            del self._lanes[sale_id]

    async def _send(self, sale_id: str, lane: _Lane, batch: list[_Queued]) -> None:
        self._on_batch(len(batch))
        try:
            outcomes = await self._run_batch(sale_id, [q.attempt for q in batch])
        except BaseException as exc:
            for queued in batch:
                if not queued.future.done():
                    queued.future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            for queued, outcome in zip(batch, outcomes, strict=True):
                if not queued.future.done():
                    queued.future.set_result(outcome)
        finally:
            for queued in batch:
                queued.attempt.finished = True
            lane.in_flight -= 1
            if lane.queue:
                self._flush(sale_id)
            elif lane.in_flight == 0 and self._lanes.get(sale_id) is lane:
                del self._lanes[sale_id]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
