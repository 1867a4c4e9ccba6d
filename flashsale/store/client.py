"""Builds the asyncio Redis client every part of the engine shares within a process."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff

from flashsale.settings import Settings
from flashsale.store.tries import RecordingRetry


def connect(settings: Settings, url: str | None = None) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url or settings.redis.url,
        max_connections=settings.redis.max_connections,
        # A request waits this long for a free connection, then the store is "unavailable".
        timeout=settings.redis.socket_timeout_seconds,
        socket_timeout=settings.redis.socket_timeout_seconds,
        socket_connect_timeout=settings.redis.connect_timeout_seconds,
        decode_responses=True,
        # One immediate retry on a dropped connection: safe because every state-changing
        # script is safe to run twice with the same arguments (docs/reliability.md). Each
        # failed try is noted, so that a lost first reply is not hidden by the retry's error.
        retry=RecordingRetry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


def queued(*commands: object) -> None:
    """Marks commands queued on a pipeline. redis-py types them as awaitables, but a pipeline
    runs them all at execute(): there is nothing to await one by one (and mypy's
    unused-awaitable check, which catches a forgotten await elsewhere, is told so here)."""
