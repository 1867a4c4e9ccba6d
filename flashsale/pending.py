"""Purchase attempts answered 202 pending: they reached Redis, but their outcome was not
learnt in time (Redis stalled, a reply was lost). Each is settled by the engine on its own,
once Redis answers and the call that carried it has ended: either its order is found (the
units are held, as a 201 would have said), or it is fenced, so that a late arrival of it
refuses itself and a 404 for it stays true."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from flashsale.errors import StoreUnavailableError
from flashsale.pause import pause
from flashsale.store.outcomes import Attempt, Pending
from flashsale.store.sales import SaleStore

log = logging.getLogger("flashsale.pending")

SETTLE_INTERVAL_SECONDS = 0.5
# After the call that carried it has ended, how long an attempt may still be on its way (in
# a socket buffer, behind a paused Redis) before it is settled; a fence set sooner would only
# refuse an attempt that could have succeeded, never make an answer untrue.
SETTLE_GRACE_SECONDS = 1.0


@dataclass
class _Waiting:
    pending: Pending
    attempt: Attempt
    since: float = field(default_factory=time.monotonic)


class PendingAttempts:
    def __init__(self, store: SaleStore) -> None:
        self._store = store
        self._waiting: dict[str, _Waiting] = {}

    def add(self, sale_id: str, attempt: Attempt) -> Pending:
        pending = Pending(attempt.order_id, sale_id, attempt.user_id, attempt.quantity)
        self._waiting[attempt.order_id] = _Waiting(pending, attempt)
        return pending

    def get(self, order_id: str) -> Pending | None:
        waiting = self._waiting.get(order_id)
        return None if waiting is None else waiting.pending

    def __len__(self) -> int:
        return len(self._waiting)

    async def settle_due(self) -> int:
        """Settles the attempts whose call has ended at least the grace ago; returns how many.
        One Redis still failing leaves the rest for the next round."""
        now = time.monotonic()
        due = [
            w for w in self._waiting.values()
            if w.attempt.finished and now - w.since >= SETTLE_GRACE_SECONDS
        ]  # fmt: skip
        settled = 0
        for waiting in due:
            order_id = waiting.pending.order_id
            try:
                order = await self._store.settle_attempt(order_id)
            except StoreUnavailableError as exc:
                log.debug("cannot settle %s yet: %s", order_id, exc)
                continue
            del self._waiting[order_id]
            settled += 1
            log.info("settled pending order %s: %s", order_id, order.status if order else "fenced")
        return settled

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await pause(SETTLE_INTERVAL_SECONDS, stop)
            if self._waiting:
                await self.settle_due()
