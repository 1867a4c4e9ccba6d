"""Waiting in background loops: a pause that ends early when the loop is told to stop."""

from __future__ import annotations

import asyncio
import contextlib


async def pause(seconds: float, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
