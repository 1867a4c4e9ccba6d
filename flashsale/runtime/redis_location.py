"""Finds the Redis a command should use: the configured URL, the embedded one `serve` is
running for this data dir, or (with neither) a private one started on the data dir."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flashsale.runtime.embedded_redis import RUNTIME_FILE, EmbeddedRedis
from flashsale.settings import Settings

log = logging.getLogger("flashsale.redis_location")


def running_embedded_url(settings: Settings) -> str | None:
    """The URL of the embedded Redis a live `serve` owns for this data dir, if any."""
    runtime = settings.data_dir / RUNTIME_FILE
    try:
        info = json.loads(runtime.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return str(info["url"])


@asynccontextmanager
async def located_redis(settings: Settings) -> AsyncIterator[str]:
    if settings.redis.url:
        yield settings.redis.url
        return
    url = running_embedded_url(settings)
    if url is not None:
        log.info("using the embedded Redis of the running service (%s)", RUNTIME_FILE)
        yield url
        return
    embedded = EmbeddedRedis.from_settings(settings)
    log.info("no service running on %s: starting its Redis for this command", settings.data_dir)
    try:
        yield await embedded.start()
    finally:
        await embedded.stop()
