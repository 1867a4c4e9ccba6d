"""Reads a Redis server's persistence settings and says whether they can lose orders."""

from __future__ import annotations

import logging
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from flashsale.store.client import is_cluster

_LOG = logging.getLogger("flashsale.durability")
# The periodic check's findings: its own changes are what it logs.
_QUIET = logging.getLogger("flashsale.durability.periodic")
_QUIET.disabled = True

# What the engine needs for "durable before acknowledged".
SAFE = {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"}
_RISKS = {
    "appendonly": "acknowledged reservations live only in memory and vanish on a restart",
    "appendfsync": "a crash can lose the last writes Redis already acknowledged",
    "maxmemory-policy": "Redis may evict sale, hold or order keys when memory runs short",
}


async def durability_warnings(redis: Redis, *, quiet: bool = False) -> list[str]:
    """One sentence per setting that can lose acknowledged orders; logs what it found
    (unless `quiet`: the worker's periodic check says it only when it changes)."""
    log = _QUIET if quiet else _LOG
    if is_cluster(redis):
        return await _cluster_durability_warnings(cast(RedisCluster, redis), log)
    found: dict[str, str] = {}
    try:
        for name in SAFE:
            reply = await redis.config_get(name)
            found.update({str(key): str(value) for key, value in reply.items()})
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        # Start anyway: /readyz answers 503 and purchases 503 until Redis answers.
        warning = f"Redis is not reachable at start-up ({exc}); its durability is unchecked"
        log.warning(warning)
        return [warning]
    except redis_errors.ResponseError as exc:
        # Managed services often rename or forbid CONFIG.
        warning = f"could not read the Redis persistence settings ({exc}); check them by hand"
        log.warning(warning)
        return [warning]
    log.info(
        "Redis durability: %s",
        ", ".join(f"{name}={found.get(name, '?')}" for name in SAFE),
    )
    warnings = [
        f"{name} is {found.get(name)!r}, not {wanted!r}: {_RISKS[name]}"
        for name, wanted in SAFE.items()
        if found.get(name) != wanted
    ]
    for warning in warnings:
        log.warning("Redis durability: %s", warning)
    return warnings


async def _cluster_durability_warnings(cluster: RedisCluster, log: logging.Logger) -> list[str]:
    """Every node's settings (a replica promoted by a failover must be as durable as the
    primary it replaces): one sentence per node and setting that can lose orders."""
    per_node: dict[str, dict[str, str]] = {}
    try:
        for name in SAFE:
            replies: Any = await cluster.config_get(name, target_nodes=RedisCluster.ALL_NODES)
            for node, reply in replies.items():
                per_node.setdefault(str(node), {}).update(
                    {str(key): str(value) for key, value in reply.items()}
                )
    except redis_errors.RedisError as exc:
        warning = f"could not read the cluster's persistence settings ({exc}); check them by hand"
        log.warning(warning)
        return [warning]
    warnings = [
        f"node {node}: {name} is {found.get(name)!r}, not {wanted!r}: {_RISKS[name]}"
        for node, found in sorted(per_node.items())
        for name, wanted in SAFE.items()
        if found.get(name) != wanted
    ]
    log.info("Redis Cluster durability: %d nodes checked", len(per_node))
    for warning in warnings:
        log.warning("Redis durability: %s", warning)
    return warnings
