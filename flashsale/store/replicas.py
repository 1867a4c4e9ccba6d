"""A script call that returns only once replicas have its writes (Redis WAIT).

WAIT counts the writes of the connection it is sent on, so the script and the WAIT go out
together on one connection: one pipeline on a single Redis; on a cluster, both aimed at the
node that owns the keys' slot, with redirections off (a MOVED followed for the script alone
would leave the WAIT on a connection that wrote nothing, and it would count nothing).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from flashsale.errors import StoreUnavailableError
from flashsale.store.client import is_cluster, queued


@dataclass(frozen=True)
class ReplicaWait:
    """Redis WAIT after each purchase: `replicas` must acknowledge it within `timeout_ms`."""

    replicas: int = 0
    timeout_ms: int = 100


NO_WAIT = ReplicaWait()


async def call_replicated(
    redis: Redis, wait: ReplicaWait, script: AsyncScript, keys: list[str], args: list[Any]
) -> Any:
    """The script's reply once `wait.replicas` replicas have its writes. Raises
    StoreUnavailableError (it ran) when fewer took them in time: the caller answers pending
    rather than claim a hold that a failover could still lose."""
    if is_cluster(redis):
        reply, acknowledged = await _on_the_keys_node(cast(RedisCluster, redis), wait, script,
                                                      keys, args)  # fmt: skip
    else:
        pipe = redis.pipeline(transaction=False)
        await script(keys=keys, args=args, client=pipe)  # the pipeline loads it if need be
        queued(pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms))
        reply, acknowledged = await pipe.execute()
    if int(acknowledged) < wait.replicas:
        raise StoreUnavailableError(
            f"{acknowledged} of {wait.replicas} replicas acknowledged a write within "
            f"{wait.timeout_ms} ms",
            may_have_run=True,
        )
    return reply


async def _on_the_keys_node(
    cluster: RedisCluster, wait: ReplicaWait, script: AsyncScript, keys: list[str], args: list[Any]
) -> tuple[Any, Any]:
    for _try in range(3):
        node = cluster.get_node_from_key(keys[0])
        pipe = cluster.pipeline(transaction=False)
        queued(
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args,
                                 target_nodes=node),
            pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms, target_nodes=node),
        )  # fmt: skip
        try:
            reply, acknowledged = await pipe.execute(allow_redirections=False)
            return reply, acknowledged
        except redis_errors.NoScriptError:
            # A cluster pipeline does not load scripts, and a promoted replica starts with
            # none: it did not run. Load it on that node and send again.
            await cluster.execute_command("SCRIPT LOAD", script.script, target_nodes=node)
        except (redis_errors.MovedError, redis_errors.AskError):
            # The slot moved (a failover, a resharding): it did not run. One plain command on
            # the key follows the redirect and updates the client's slot map; send again.
            await cluster.exists(keys[0])
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            # It may have run: the caller's guard judges the error. The same plain command
            # makes the client look for the slot's new owner before the next call.
            with suppress(redis_errors.RedisError):  # failing, it asks for a fresh slot map
                await cluster.exists(keys[0])
            raise
    raise StoreUnavailableError("the keys' slot kept moving or the script kept vanishing")
