"""The loss window and the cost of WAIT on a Redis Cluster (docs/scaling.md).

`flashsale serve` runs against a private cluster (3 primaries, 3 replicas, one-second node
timeout) with `redis.wait_replicas` 0 (asynchronous replication, the default) and then 1.
For each it measures:

- the cost: purchases/s and latency under a steady load, no fault;
- the loss window, over --runs failovers: shoppers buy, the primary that holds the sale is
  killed with SIGKILL, the cluster promotes its replica, the dead node is restarted (it
  rejoins as a replica), and every 201 the shoppers were sent is looked up in Redis: a 201
  the promoted replica never got is an acknowledged hold lost.

Prints a table; asserts nothing. Load and engine share this machine's cores: compare the
two modes within one run, not across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from redis.asyncio.cluster import RedisCluster

from flashsale import keys
from flashsale.runtime.redis_cluster import LocalCluster, local_redis_cluster
from flashsale.runtime.redis_server import free_port
from flashsale.store.client import queued

ADMIN_TOKEN = secrets.token_urlsafe(24)  # this run's engine only


@dataclass
class Answers:
    """What the shoppers were told: (completed at, status, order id, seconds taken)."""

    rows: list[tuple[float, int, str, float]] = field(default_factory=list)
    # Set by the first 201 completed after `watch_from` (a monotonic time).
    watch_from: float = float("inf")
    sold_again: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, at: float, status: int, order_id: str, took: float) -> None:
        self.rows.append((at, status, order_id, took))
        if status == 201 and at > self.watch_from:
            self.sold_again.set()

    def acknowledged(self, after: float = 0.0) -> list[str]:
        return [order for at, status, order, _ in self.rows if status == 201 and at >= after]

    def count(self, status: int) -> int:
        return sum(row[1] == status for row in self.rows)


async def shoppers(
    base: str, sale_id: str, count: int, stop: asyncio.Event, answers: Answers
) -> Answers:

    async def shopper(session: aiohttp.ClientSession, n: int) -> None:
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            body = {"user_id": f"u{n}-{i}", "quantity": 1}
            try:
                async with session.post(f"{base}/v1/sales/{sale_id}/purchases", json=body) as r:
                    answer = await r.json(content_type=None)
                    status = r.status
            except (aiohttp.ClientError, TimeoutError):
                status, answer = 0, {}
            now = time.monotonic()
            answers.add(now, status, str(answer.get("order_id", "")), now - started)
            i += 1

    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=count)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(shopper(session, n) for n in range(count)))
    return answers


class Engine:
    """`flashsale serve` on a free port, against the cluster, as its own process."""

    def __init__(self, cluster: LocalCluster, wait_replicas: int, data_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "FLASHSALE_REDIS_URL": cluster.urls[0],
            "FLASHSALE_REDIS_WAIT_REPLICAS": str(wait_replicas),
            "FLASHSALE_REDIS_WAIT_TIMEOUT_MS": "500",
            "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
            "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0",
            "FLASHSALE_ADMISSION_USER_RATE_PER_SECOND": "0",
        }
        flashsale = Path(sys.executable).with_name("flashsale")
        self.process = subprocess.Popen(
            [str(flashsale), "serve", "--port", str(self.port), "--workers", "1",
             "--data-dir", str(data_dir)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    async def ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with suppress(aiohttp.ClientError):
                async with session.get(f"{self.base}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError("flashsale serve did not become ready")

    async def new_sale(self, session: aiohttp.ClientSession, sale_id: str) -> None:
        body = {
            "sale_id": sale_id, "sku": "SKU", "name": "failover", "stock": 10_000_000,
            "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
        }  # fmt: skip
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with session.post(f"{self.base}/admin/sales", json=body, headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(f"could not create the sale: {await r.text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def steady(engine: Engine, sale_id: str, seconds: float, count: int) -> Answers:
    stop = asyncio.Event()
    load = asyncio.create_task(shoppers(engine.base, sale_id, count, stop, Answers()))
    await asyncio.sleep(seconds)
    stop.set()
    return await load


async def failover_run(
    engine: Engine,
    cluster: LocalCluster,
    redis: RedisCluster,
    sale_id: str,
    args: argparse.Namespace,
) -> dict[str, float]:
    owner = redis.get_node_from_key(keys.sale(sale_id))
    assert owner is not None
    primary = cluster.node_at(int(owner.port))
    stop, answers = asyncio.Event(), Answers()
    load = asyncio.create_task(shoppers(engine.base, sale_id, args.shoppers, stop, answers))
    await asyncio.sleep(args.seconds)
    killed_at = time.monotonic()
    primary.kill()
    await asyncio.to_thread(cluster.wait_promoted_instead_of, primary)
    promoted_at = answers.watch_from = time.monotonic()
    await asyncio.to_thread(primary.start)  # its supervisor brings it back, as a replica
    # Shoppers go on until one is sold a unit again (with WAIT, once the restarted node has
    # synced as the new primary's replica), then one second more.
    with suppress(TimeoutError):
        await asyncio.wait_for(answers.sold_again.wait(), timeout=20)
    await asyncio.sleep(1.0)
    stop.set()
    await load
    acknowledged = answers.acknowledged()
    pipe = redis.pipeline(transaction=False)
    queued(*(pipe.exists(keys.order(sale_id, order_id)) for order_id in acknowledged))
    present = await pipe.execute()
    first_after = min(
        (at for at, status, _o, _s in answers.rows if status == 201 and at > promoted_at),
        default=float("nan"),
    )
    return {
        "acknowledged": len(acknowledged),
        "lost": sum(not found for found in present),
        "pending": answers.count(202),
        "refused": answers.count(503) + answers.count(429),
        "promoted_s": promoted_at - killed_at,
        "first_201_s": first_after - killed_at,
    }


async def measure(
    cluster: LocalCluster, wait_replicas: int, args: argparse.Namespace
) -> dict[str, str]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"flashsale-failover-{wait_replicas}-"))
    engine = Engine(cluster, wait_replicas, data_dir)
    redis = await RedisCluster.from_url(cluster.urls[1], decode_responses=True).initialize()
    try:
        async with aiohttp.ClientSession() as session:
            await engine.ready(session)
            await engine.new_sale(session, f"steady-{wait_replicas}")
            cost = await steady(engine, f"steady-{wait_replicas}", args.seconds, args.shoppers)
            runs = []
            for run in range(args.runs):
                sale_id = f"failover-{wait_replicas}-{run}"
                await engine.new_sale(session, sale_id)
                runs.append(await failover_run(engine, cluster, redis, sale_id, args))
                await asyncio.to_thread(cluster.wait_settled)
                await redis.aclose()  # a fresh slot map for the next run
                redis = await RedisCluster.from_url(
                    cluster.urls[1], decode_responses=True
                ).initialize()
    finally:
        engine.stop()
        await redis.aclose()
    latencies = sorted(took for _at, status, _o, took in cost.rows if status == 201)
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    lost = [run["lost"] for run in runs]
    return {
        "wait_replicas": str(wait_replicas),
        "purchases/s": f"{len(latencies) / args.seconds:,.0f}",
        "p50 ms": f"{statistics.median(latencies) * 1000:.1f}" if latencies else "-",
        "p99 ms": f"{p99 * 1000:.1f}",
        "holds acked": str(int(sum(run["acknowledged"] for run in runs))),
        "lost per run": " ".join(str(int(n)) for n in lost),
        "answered 202": str(int(sum(run["pending"] for run in runs))),
        "promoted s": f"{statistics.median(run['promoted_s'] for run in runs):.1f}",
        "first 201 s": f"{statistics.median(run['first_201_s'] for run in runs):.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="failovers per mode")
    parser.add_argument("--seconds", type=float, default=4.0, help="load before each kill")
    parser.add_argument("--shoppers", type=int, default=50, help="concurrent shoppers")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="flashsale-cluster-") as directory,
        local_redis_cluster(Path(directory), node_timeout_ms=1000) as cluster,
    ):
        rows = [asyncio.run(measure(cluster, wait, args)) for wait in (0, 1)]
    columns = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(row[c].rjust(w) for c, w in zip(columns, widths, strict=True)))
    base, waited = (float(r["purchases/s"].replace(",", "")) for r in rows)
    print(f"WAIT 1 costs {1 - waited / base:.0%} of the purchases/s (same machine, same run)")


if __name__ == "__main__":
    main()
