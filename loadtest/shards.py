"""One hot sale's purchases/s over K = 1, 2 and 3 shards, on a private Redis Cluster.

    python loadtest/shards.py [--duration 10] [--connections 64] [--workers 2]

A cluster of 3 primaries (no replicas: they would only take CPU from the run) and `flashsale
serve --workers N` against it; wrk posts purchases, each from a fresh user, to one sale
created with "shards": K, for each K in turn. Printed per K: purchases/s, the ratio to K = 1
measured in the same run, p50/p99, and each Redis primary's CPU per second of the run - which
shows whether Redis or the engine is what limits the sale. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from pathlib import Path

import redis as blocking_redis
from bench import TOKEN, engine, wait_until_up
from load_generators import ALL_CORES, Figures, cores, warm, wrk

from flashsale.runtime.redis_cluster import local_redis_cluster

HERE = Path(__file__).resolve().parent


def create_sale(base: str, shards: int) -> str:
    body = {
        "sku": "HOT-1", "name": "one hot sale", "stock": 100_000_000, "per_user_limit": 1,
        "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
        "shards": shards,
    }  # fmt: skip
    request = urllib.request.Request(  # noqa: S310 - loopback only
        base + "/admin/sales", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return str(json.load(response)["sale_id"])


def cpu_seconds(urls: list[str]) -> list[float]:
    """Each node's CPU time so far (user + system), from INFO cpu."""
    spent = []
    for url in urls:
        with blocking_redis.Redis.from_url(url) as node:
            info = node.info("cpu")
            spent.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="engine processes")
    args = parser.parse_args()
    script = HERE / "purchase.lua"
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="flashsale-shards-") as scratch,
        local_redis_cluster(Path(scratch) / "cluster", primaries=3, replicas=0) as cluster,
        engine(cluster.urls[0], Path(scratch) / "data", workers=args.workers) as base,
    ):
        wait_until_up(base + "/readyz")
        for shards in (1, 2, 3):
            sale_id = create_sale(base, shards)
            url = f"{base}/v1/sales/{sale_id}/purchases"
            warm(url, script, args.connections)
            before = cpu_seconds(cluster.urls)
            figures = wrk(f"shards={shards}", url, args.duration, args.connections, script)
            after = cpu_seconds(cluster.urls)
            busy = [(a - b) / args.duration for a, b in zip(after, before, strict=True)]
            rows.append((shards, figures, busy))

    def sold(figures: Figures) -> float:  # 201s per second: wrk's rate less its refusals
        return float(figures.rps - figures.non_2xx / args.duration)

    base_rate = sold(rows[0][1])
    print(f"one hot sale, {ALL_CORES} cores (load on {' '.join(cores('load')) or 'any'}); "
          f"{args.workers} engine processes, {args.connections} connections, "
          f"{args.duration:g} s each")  # fmt: skip
    print(
        f"{'shards':>6} {'purchases/s':>12} {'vs K=1':>7} {'p50 ms':>7} {'p99 ms':>7}  "
        "Redis primaries' CPU (s per s)"
    )
    for shards, figures, busy in rows:
        print(f"{shards:>6} {sold(figures):>12,.0f} {sold(figures) / base_rate:>6.2f}x "
              f"{figures.p50_ms:>7.1f} {figures.p99_ms:>7.1f}  "
              + " ".join(f"{b:.2f}" for b in busy))  # fmt: skip


if __name__ == "__main__":
    main()
