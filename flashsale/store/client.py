"""Builds the asyncio Redis client every part of the engine shares within a process: redis-py's
plain client for one server, its cluster client when the URL names a node of a Redis Cluster."""

from __future__ import annotations

import logging
from typing import cast

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from flashsale.settings import Settings
from flashsale.store.tries import RecordingRetry

log = logging.getLogger("flashsale.redis")


async def connect(settings: Settings, url: str | None = None) -> Redis:
    """The client for `url` (default: the configured one). With `redis.cluster = "auto"` the
    server is asked once whether it is a cluster node.

    The cluster client is typed as `Redis`: it takes the same calls the engine makes (each
    routed by its keys' slot), and the few places that differ ask `is_cluster`."""
    url = url or settings.redis.url
    mode = settings.redis.cluster
    if mode == "auto":
        mode = "yes" if await _names_a_cluster_node(settings, url) else "no"
    if mode == "yes":
        log.info("Redis Cluster mode: redis-py's cluster client, routed by each key's slot")
        return cast(Redis, connect_cluster(settings, url))
    return connect_single(settings, url)


def connect_single(settings: Settings, url: str | None = None) -> Redis:
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


def connect_cluster(settings: Settings, url: str) -> RedisCluster:
    return RedisCluster.from_url(
        url,
        socket_timeout=settings.redis.socket_timeout_seconds,
        socket_connect_timeout=settings.redis.connect_timeout_seconds,
        decode_responses=True,
        # No retry of a failed command: the cluster client's retry loop does not pass through
        # Retry.call_with_retry, so the failed tries could not be recorded (store/tries.py)
        # and a lost first reply would hide behind the retry's "could not connect". A failed
        # call is judged by its own error; the client still refreshes the slot map after it
        # (a failover) and follows MOVED/ASK redirects, which are not retries.
        retry=Retry(NoBackoff(), 0),
        # Per node. The cluster client raises at its cap rather than wait for a free
        # connection, so the cap is what the process can ever ask of one node at once: the
        # in-flight bound covers the requests, the plain pool's size the background loops.
        max_connections=settings.admission.max_in_flight + settings.redis.max_connections,
    )


def is_cluster(redis: Redis) -> bool:
    return isinstance(redis, RedisCluster)  # the cluster client is typed as Redis: connect()


async def _names_a_cluster_node(settings: Settings, url: str) -> bool:
    probe = Redis.from_url(
        url,
        socket_timeout=settings.redis.socket_timeout_seconds,
        socket_connect_timeout=settings.redis.connect_timeout_seconds,
        decode_responses=True,
    )
    try:
        info = await probe.info("cluster")
    except redis_errors.RedisError as exc:
        log.warning(
            "could not ask Redis whether it is a cluster node (%s): assuming a single server;"
            " set FLASHSALE_REDIS_CLUSTER=yes if it is a cluster",
            exc,
        )
        return False
    finally:
        await probe.aclose()
    return bool(info.get("cluster_enabled"))


def queued(*commands: object) -> None:
    """Marks commands queued on a pipeline. redis-py types them as awaitables, but a pipeline
    runs them all at execute(): there is nothing to await one by one (and mypy's
    unused-awaitable check, which catches a forgotten await elsewhere, is told so here)."""
