"""One hot sale's purchases/s over K = 1, 2 and 3 shards, on a private Redis Cluster.

    python loadtest/shards.py [--duration 10] [--connections 64] [--workers 1]

A cluster of 3 primaries (no replicas: they would only take CPU from the run) and `flashsale
serve` (one process by default) against it; wrk posts purchases, each from a fresh user, to
one sale created with "shards": K, for each K in turn. Printed per K: purchases/s (the
engine's own count), the ratio to K = 1 measured in the same run, wrk's answers/s, p50/p99,
attempts per script call, and each Redis primary's CPU per second of the run - which shows
whether Redis or the engine is what limits the sale. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path

import redis as blocking_redis
from bench import TOKEN, engine, wait_until_up
from load_generators import ALL_CORES, cores, warm, wrk
from prometheus_client.parser import text_string_to_metric_families

from flashsale.runtime.redis_cluster import local_redis_cluster

HERE = Path(__file__).resolve().parent


def create_sale(base: str, shards: int) -> str:
    body = {
        # wrk's Lua never seeds its random numbers, so the warm-up and the run send the same
        # "fresh" user ids: a cap of 1 would refuse the run's first ones (as bench.py knows).
        "sku": "HOT-1", "name": "one hot sale", "stock": 100_000_000,
        "per_user_limit": 1_000_000,
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


def engine_totals(base: str) -> tuple[float, float, float]:
    """(purchases Redis answered ok, attempts in batches, batch script calls) so far, from
    the engine's /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    ok = attempts = calls = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "flashsale_purchase_attempts_total":
                ok += sample.value if sample.labels.get("outcome") == "ok" else 0.0
            elif sample.name == "flashsale_purchase_batch_size_sum":
                attempts += sample.value
            elif sample.name == "flashsale_purchase_batch_size_count":
                calls += sample.value
    return ok, attempts, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    # One process: the engine has one core here, and its /metrics count its own purchases.
    parser.add_argument("--workers", type=int, default=1, help="engine processes")
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
            before, totals_before = cpu_seconds(cluster.urls), engine_totals(base)
            started = time.monotonic()
            figures = wrk(f"shards={shards}", url, args.duration, args.connections, script)
            took = time.monotonic() - started
            after, totals_after = cpu_seconds(cluster.urls), engine_totals(base)
            busy = [(a - b) / took for a, b in zip(after, before, strict=True)]
            ok, attempts, calls = (a - b for a, b in zip(totals_after, totals_before, strict=True))
            rows.append((shards, figures, busy, ok / took, attempts / calls if calls else 0.0))

    base_rate = rows[0][3]
    print(f"one hot sale, {ALL_CORES} cores (load on {' '.join(cores('load')) or 'any'}); "
          f"{args.workers} engine processes, {args.connections} connections, "
          f"{args.duration:g} s each")  # fmt: skip
    print(f"{'shards':>6} {'purchases/s':>12} {'vs K=1':>7} {'answers/s':>10} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'per call':>9}  Redis primaries' CPU (s per s)")  # fmt: skip
    for shards, figures, busy, sold, per_call in rows:
        ratio = f"{sold / base_rate:>6.2f}x" if base_rate else "     -"
        print(f"{shards:>6} {sold:>12,.0f} {ratio} {figures.rps:>10,.0f} "
              f"{figures.p50_ms:>7.1f} {figures.p99_ms:>7.1f} {per_call:>9.1f}  "
              + " ".join(f"{b:.2f}" for b in busy))  # fmt: skip
    print(
        "purchases/s: the engine's own count of holds taken, over wrk's run; answers/s: "
        "wrk's; per call: attempts per script call (a batch groups one bucket's only)"
    )


if __name__ == "__main__":
    main()
