"""The worker's retry policy: capped exponential backoff, never a hot loop."""

from __future__ import annotations

import asyncio

from flashsale.pause import pause

BACKOFF_START_SECONDS = 0.05


class Backoff:
    """Delays that start at `start` and double up to `cap`; `reset()` after a success."""

    def __init__(self, cap: float, start: float = BACKOFF_START_SECONDS) -> None:
        self._start = start
        self._cap = cap
        self.delay = start

    def reset(self) -> None:
        self.delay = self._start

    async def wait(self, stop: asyncio.Event | None = None) -> None:
        """Waits the current delay (less if `stop` is set meanwhile), then doubles it."""
        await pause(self.delay, stop)
        self.delay = min(self.delay * 2, self._cap)
