"""The background half of the engine: the order-queue consumer and the hold sweeper."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from flashsale.metrics import Metrics
from flashsale.pause import pause
from flashsale.settings import Settings
from flashsale.sinks import OrderSink
from flashsale.store.active_sales import ActiveSales
from flashsale.store.scripts import Scripts
from flashsale.worker.consumer import OrderQueue, QueueSettings
from flashsale.worker.rebalancer import Rebalancer
from flashsale.worker.retry import Backoff
from flashsale.worker.sweeper import HoldSweeper
from flashsale.worker.watchdog import Watchdog

log = logging.getLogger("flashsale.worker")

# How often finished sales are looked for: a finished sale costs the loops a few commands a
# pass until then, so seconds are plenty.
RETIRE_INTERVAL_SECONDS = 5.0


def consumer_name() -> str:
    """Unique per process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        sink: OrderSink,
        settings: Settings,
        metrics: Metrics,
        consumer: str | None = None,
    ) -> None:
        self.queue = OrderQueue(
            redis,
            scripts,
            sink,
            QueueSettings(
                batch_size=settings.worker.batch_size,
                claim_idle_seconds=settings.worker.claim_idle_seconds,
                max_deliveries=settings.worker.max_deliveries,
                backoff_max_seconds=settings.worker.backoff_max_seconds,
            ),
            consumer or consumer_name(),
            metrics,
        )
        self.sweeper = HoldSweeper(redis, scripts, metrics, settings.worker.batch_size)
        self.rebalancer = Rebalancer(redis, scripts, metrics)
        self.active = ActiveSales(redis, scripts)
        self.watchdog = Watchdog(
            redis, sink, self.active, metrics, settings.worker.audit_interval_seconds
        )
        self._settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; the batch in hand is stored and acknowledged before returning."""
        queue_step = lambda: self.queue.pass_once(stop)  # noqa: E731
        await self.active.seed()
        await asyncio.gather(
            self._loop("retirement", self.active.retire_finished, RETIRE_INTERVAL_SECONDS, stop),
            self._loop("order queue", queue_step, self._settings.worker.idle_poll_seconds, stop),
            self._loop(
                "hold sweeper",
                self.sweeper.sweep_once,
                self._settings.worker.sweep_interval_seconds,
                stop,
            ),
            self._loop(
                "rebalancer",
                self.rebalancer.pass_once,
                self._settings.worker.rebalance_interval_seconds,
                stop,
            ),
            self._loop(
                "watchdog",
                self.watchdog.pass_once,
                self._settings.worker.health_interval_seconds,
                stop,
            ),
        )

    async def burst(self) -> tuple[int, int]:
        """Expires due holds and drains every stream, then returns (expired, events handled);
        finished sales leave the index of those the loops visit."""
        await self.active.seed()
        expired = await self.sweeper.sweep_once()
        await self.rebalancer.pass_once()
        handled = 0
        while (count := await self.queue.pass_once()) > 0:
            handled += count
        await self.active.retire_finished()
        return expired, handled

    async def _loop(
        self,
        name: str,
        step: Callable[[], Awaitable[int]],
        idle_interval: float,
        stop: asyncio.Event,
    ) -> None:
        backoff = Backoff(self._settings.worker.backoff_max_seconds)
        while not stop.is_set():
            try:
                done = await step()
                backoff.reset()
            except Exception:
                # Redis down or a bug: never a hot loop, never a dead worker.
                log.exception("%s failed; next try in %.2fs", name, backoff.delay)
                await backoff.wait(stop)
                continue
            if done == 0:  # busy loops go straight on
                await pause(idle_interval, stop)
