"""Counts of purchase attempts a process answered without Redis, added to the sale's
counters in Redis once a second (one script call per sale), so operators see them.

Each flush of a sale's counts is a batch with an id of its own, sent until Redis takes it:
the script remembers the ids it has applied, so a retry after a lost reply counts nothing
twice, and a failure for one sale keeps that sale's batch without holding back the others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from flashsale import keys
from flashsale.pause import pause

log = logging.getLogger("flashsale.local_counts")

FLUSH_INTERVAL_SECONDS = 1.0


class CountsScript(Protocol):
    async def add_counts(
        self,
        sale_id: str,
        batch_id: str,
        attempts: int,
        rejected: int,
        shed: int,
        shed_by: Mapping[str, int] | None = None,
    ) -> bool: ...


@dataclass
class _Batch:
    batch_id: str
    counts: Counter[str] = field(default_factory=Counter)


class LocalCounts:
    def __init__(self) -> None:
        self._pending: dict[str, Counter[str]] = {}
        self._unsent: dict[str, list[_Batch]] = {}
        # Unique across processes and restarts without asking anyone.
        self._ids = (f"{os.urandom(6).hex()}-{n}" for n in itertools.count())

    def rejected(self, sale_id: str) -> None:
        self._add(sale_id, "rejected")

    def shed(self, sale_id: str, reason: str) -> None:
        counts = self._add(sale_id, "shed")
        counts[keys.SHED_FIELD_PREFIX + reason] += 1  # the operators' live view shows reasons

    def _add(self, sale_id: str, kind: str) -> Counter[str]:
        counts = self._pending.setdefault(sale_id, Counter())
        counts["attempts"] += 1
        counts[kind] += 1
        return counts

    async def flush(self, scripts: CountsScript) -> None:
        """Sends every sale's batches; raises the first failure after trying them all."""
        pending, self._pending = self._pending, {}
        for sale_id, counts in pending.items():
            self._unsent.setdefault(sale_id, []).append(_Batch(next(self._ids), counts))
        failure: Exception | None = None
        for sale_id, batches in list(self._unsent.items()):
            while batches:
                batch = batches[0]
                try:
                    await scripts.add_counts(
                        sale_id, batch.batch_id, batch.counts["attempts"],
                        batch.counts["rejected"], batch.counts["shed"], _shed_by(batch.counts),
                    )  # fmt: skip
                except Exception as exc:
                    failure = failure or exc  # kept, with its id, for the next flush
                    break
                batches.pop(0)
            if not batches:
                del self._unsent[sale_id]
        if failure is not None:
            raise failure

    async def run(self, scripts: CountsScript, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await pause(FLUSH_INTERVAL_SECONDS, stop)
            try:
                await self.flush(scripts)
            except Exception as exc:
                log.debug("could not add local counts yet: %s", exc)


def _shed_by(counts: Counter[str]) -> dict[str, int]:
    prefix = keys.SHED_FIELD_PREFIX
    return {k.removeprefix(prefix): n for k, n in counts.items() if k.startswith(prefix)}
