"""Counts of purchase attempts a process answered without Redis, added to the sale's
counters in Redis once a second (one script call per sale), so operators see them."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from flashsale.pause import pause
from flashsale.store.scripts import Scripts

log = logging.getLogger("flashsale.local_counts")

FLUSH_INTERVAL_SECONDS = 1.0


class LocalCounts:
    def __init__(self) -> None:
        self._pending: dict[str, Counter[str]] = {}

    def rejected(self, sale_id: str) -> None:
        self._add(sale_id, "rejected")

    def shed(self, sale_id: str) -> None:
        self._add(sale_id, "shed")

    def _add(self, sale_id: str, kind: str) -> None:
        counts = self._pending.setdefault(sale_id, Counter())
        counts["attempts"] += 1
        counts[kind] += 1

    async def flush(self, scripts: Scripts) -> None:
        pending, self._pending = self._pending, {}
        for sale_id, counts in pending.items():
            try:
                await scripts.add_counts(
                    sale_id, counts["attempts"], counts["rejected"], counts["shed"]
                )
            except Exception:
                # Redis is down: keep them for the next try rather than lose them.
                again = self._pending.setdefault(sale_id, Counter())
                again.update(counts)
                raise

    async def run(self, scripts: Scripts, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await pause(FLUSH_INTERVAL_SECONDS, stop)
            try:
                await self.flush(scripts)
            except Exception as exc:
                log.debug("could not add local counts yet: %s", exc)
