"""What hundreds of console watchers cost the purchase path: purchases/s and latency with
nobody watching the sale, then with N watchers on its live stream, alternating.

    python loadtest/live_watchers.py [--duration 10] [--rounds 3] [--watchers 300]

One `flashsale serve` process on a durable private Redis; wrk posts purchases (a fresh user
each) to one sale. Each round runs wrk twice, without watchers and with N streams of
GET /admin/sales/{id}/live open (a separate process on the load generator's core, which also
counts the events each watcher got). Printed: per mode, the median over the rounds of
answers/s, p50/p99 and the engine process's CPU (per second, and per answer: the figure
that shows a cost even when the one engine core is not the limit), the ratios of the two
modes measured in the same run, and the events per watcher per second the watchers actually
received. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from bench import TOKEN, create_sale, engine, redis, wait_until_up
from load_generators import ALL_CORES, Figures, cores, warm, wrk

HERE = Path(__file__).resolve().parent


async def watch(base: str, sale_id: str, watchers: int) -> None:
    """Keeps `watchers` streams open until stdin closes; prints the events each received."""
    counts = [0] * watchers
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def one(index: int) -> None:
            path = f"/admin/sales/{sale_id}/live"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get(path, headers=headers, timeout=None) as response:
                async for line in response.content:
                    if line.startswith(b"event: sale"):
                        counts[index] += 1

        tasks = [asyncio.create_task(one(i)) for i in range(watchers)]
        started = time.monotonic()
        print("watching", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        took = time.monotonic() - started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    cpu = os.times()
    print(json.dumps({"events_per_watcher_per_second": statistics.mean(counts) / took,
                      "fewest": min(counts), "seconds": took,
                      "cpu_per_second": (cpu.user + cpu.system) / took}), flush=True)  # fmt: skip


@dataclass
class Measured:
    figures: Figures
    engine_cpu: float  # the engine process's CPU seconds per second of the run
    received: dict[str, Any] = field(default_factory=dict)  # the watchers' own account

    @property
    def cpu_us_per_answer(self) -> float:
        return 1e6 * self.engine_cpu / self.figures.rps if self.figures.rps else 0.0


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (/proc/PID/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_wrk(pid: int, name: str, url: str, args: argparse.Namespace) -> Measured:
    before, started = cpu_seconds(pid), time.monotonic()
    figures = wrk(name, url, args.duration, args.connections, HERE / "purchase.lua")
    return Measured(figures, (cpu_seconds(pid) - before) / (time.monotonic() - started))


def idle_cpu(pid: int, seconds: float) -> float:
    """The engine's CPU seconds per second with no purchases at all."""
    before = cpu_seconds(pid)
    time.sleep(seconds)  # a benchmark measuring an interval, not a test waiting for an event
    return (cpu_seconds(pid) - before) / seconds


def with_watchers(base: str, sale_id: str, watchers: int, run: Callable[[], Measured]) -> Measured:
    args = [*cores("load"), sys.executable, __file__, "--watch", base, sale_id, str(watchers)]
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline().strip() == "watching"
        time.sleep(2)  # every stream open and receiving before the measured run
        result = run()
        proc.stdin.close()
        result.received = json.loads(proc.stdout.readline())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--watchers", type=int, default=300)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--watch", nargs=3, metavar=("URL", "SALE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watch:
        asyncio.run(watch(args.watch[0], args.watch[1], int(args.watch[2])))
        return
    alone: list[Measured] = []
    watched: list[Measured] = []
    with (
        tempfile.TemporaryDirectory(prefix="flashsale-live-") as scratch,
        redis(Path(scratch) / "redis", durable=True) as redis_url,
        engine(redis_url, Path(scratch) / "data") as base,
    ):
        wait_until_up(base + "/readyz")
        pid = int(json.loads((Path(scratch) / "data" / "serve.json").read_text())["pid"])
        sale_id = create_sale(base, 100_000_000)
        url = f"{base}/v1/sales/{sale_id}/purchases"
        # The watchers' own cost, with nothing else going on: engine CPU idle, then watched.
        idle = idle_cpu(pid, args.duration)
        idle_watched = with_watchers(
            base, sale_id, args.watchers,
            lambda: Measured(Figures("idle", 0, 0, 0), idle_cpu(pid, args.duration)),
        )  # fmt: skip
        warm(url, HERE / "purchase.lua", args.connections)
        for n in range(args.rounds):
            alone.append(measured_wrk(pid, f"alone-{n}", url, args))
            run = functools.partial(measured_wrk, pid, f"watched-{n}", url, args)
            watched.append(with_watchers(base, sale_id, args.watchers, run))
    report(args, alone, watched)
    cost = idle_watched.engine_cpu - idle
    print(
        f"with no purchases: the engine used {idle:.4f} s of CPU per second alone and "
        f"{idle_watched.engine_cpu:.4f} with {args.watchers} watchers: {1e3 * cost:.1f} ms "
        f"per second for all of them, {1e6 * cost / args.watchers:.0f} us per watcher"
    )


def report(args: argparse.Namespace, alone: list[Measured], watched: list[Measured]) -> None:
    def median(rows: list[Measured], value: Callable[[Measured], float]) -> float:
        return float(statistics.median(value(r) for r in rows))

    print(f"purchases with and without {args.watchers} live-stream watchers on the sale; "
          f"{ALL_CORES} cores (load and watchers on {' '.join(cores('load')) or 'any'}), one "
          f"engine process, {args.connections} connections, {args.rounds} rounds of "
          f"{args.duration:g} s; medians over the rounds")  # fmt: skip
    print(f"{'':<10} {'answers/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'engine CPU':>11} "
          f"{'CPU us/answer':>14}")  # fmt: skip
    for name, rows in (("alone", alone), ("watched", watched)):
        print(f"{name:<10} {median(rows, lambda r: r.figures.rps):>10,.0f} "
              f"{median(rows, lambda r: r.figures.p50_ms):>7.2f} "
              f"{median(rows, lambda r: r.figures.p99_ms):>7.2f} "
              f"{median(rows, lambda r: r.engine_cpu):>10.2f}s "
              f"{median(rows, lambda r: r.cpu_us_per_answer):>14.1f}")  # fmt: skip
    pairs = list(zip(alone, watched, strict=True))
    print(
        "watched/alone per round, answers/s: "
        + ", ".join(f"{w.figures.rps / a.figures.rps:.3f}" for a, w in pairs)
        + "; engine CPU per answer: "
        + ", ".join(f"{w.cpu_us_per_answer / a.cpu_us_per_answer:.3f}" for a, w in pairs)
    )
    rate = statistics.mean(w.received["events_per_watcher_per_second"] for w in watched)
    fewest = min(w.received["fewest"] for w in watched)
    own = statistics.mean(w.received["cpu_per_second"] for w in watched)
    print(
        f"events each watcher received: {rate:.2f}/s on average (the fewest in a round: "
        f"{fewest}); the watchers' process used {own:.2f} s of CPU per second"
    )


if __name__ == "__main__":
    main()
