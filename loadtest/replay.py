"""Launch-day traffic logs: write a synthetic one, or replay any one open-loop.

    python loadtest/replay.py generate --users 5000 --out launch.jsonl
    python loadtest/replay.py run --log launch.jsonl --url http://127.0.0.1:8080 --sale launch

A log is JSON lines, one arrival each, in time order:
    {"t": 12.345, "user": "u-17", "action": "buy", "ip": "198.51.100.4", "then": "pay"}
`t` is seconds from the start; `action` is "view" or "buy"; `then` (buys only) is what the
shopper does with a hold: "pay", "cancel" or "abandon". A log recorded from real traffic in
this shape replays the same way.

Replay is open-loop: each arrival is sent at its scheduled time (divided by --speed) whether
or not earlier requests have been answered, so a slow engine gets the same arrivals and its
latency figures are not flattered by coordinated omission. Follow-ups (pay, cancel) are sent
after a hold's 201, off the schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BOT_IPS = ("203.0.113.7", "203.0.113.8", "203.0.113.9")


@dataclass(frozen=True)
class Shape:
    """Arrivals per second: a baseline, `multiple` times it at the open, a linear decay."""

    quiet: float = 10.0
    spike: float = 10.0
    decay: float = 10.0
    multiple: float = 10.0

    @property
    def duration(self) -> float:
        return self.quiet + self.spike + self.decay

    def weight(self, t: float) -> float:
        if t < self.quiet:
            return 1.0
        if t < self.quiet + self.spike:
            return self.multiple
        share = (t - self.quiet - self.spike) / self.decay
        return self.multiple - (self.multiple - 1.0) * share


def generate(users: int, shape: Shape, seed: int, bot_share: float) -> list[dict[str, Any]]:
    """Each user arrives once, at a time drawn from the shape (rejection sampling), views the
    sale and tries to buy a moment later; bots come from a few IPs and only buy."""
    rng = random.Random(seed)
    arrivals: list[dict[str, Any]] = []
    for n in range(users):
        t = rng.uniform(0, shape.duration)
        while rng.uniform(0, shape.multiple) > shape.weight(t):
            t = rng.uniform(0, shape.duration)
        if rng.random() < bot_share:
            ip = rng.choice(BOT_IPS)
            arrivals.append({"t": t, "user": f"bot-{n}", "action": "buy", "ip": ip,
                             "then": "abandon"})  # fmt: skip
            continue
        ip = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        then = rng.choices(["pay", "cancel", "abandon"], weights=[6, 2, 2])[0]
        arrivals.append({"t": t, "user": f"u-{n}", "action": "view", "ip": ip})
        buy_at = min(shape.duration, t + rng.uniform(0.05, 1.0))
        arrivals.append({"t": buy_at, "user": f"u-{n}", "action": "buy", "ip": ip, "then": then})
    arrivals.sort(key=lambda a: float(a["t"]))
    for arrival in arrivals:
        arrival["t"] = round(arrival["t"], 4)
    return arrivals


@dataclass
class Result:
    planned: float  # seconds after the start the log asked for (-1: a follow-up)
    sent: float  # seconds after the start it was actually sent
    latency: float
    action: str
    code: str


@dataclass
class Replay:
    url: str
    sale_id: str
    speed: float
    results: list[Result] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    _start: float = 0.0
    _follow_ups: list[asyncio.Task[None]] = field(default_factory=list)

    async def run(self, arrivals: list[dict[str, Any]]) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(self.url, connector=connector, timeout=timeout) as http:
            loop = asyncio.get_running_loop()
            self._start = loop.time() + 0.2
            sends = []
            for arrival in arrivals:
                planned = float(arrival["t"]) / self.speed
                delay = self._start + planned - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # keeping to the schedule, not waiting on answers
                sends.append(asyncio.create_task(self._send(http, arrival, planned)))
            await asyncio.gather(*sends)
            await asyncio.gather(*self._follow_ups)

    async def _send(
        self, http: aiohttp.ClientSession, arrival: dict[str, Any], planned: float
    ) -> None:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        headers = {"X-Forwarded-For": str(arrival.get("ip", "127.0.0.1"))}
        try:
            if arrival["action"] == "view":
                code, _ = await self._call(http, "GET", f"/v1/sales/{self.sale_id}", headers)
            else:
                headers["Idempotency-Key"] = uuid.uuid4().hex
                code, order_id = await self._call(
                    http, "POST", f"/v1/sales/{self.sale_id}/purchases", headers,
                    {"user_id": arrival["user"], "quantity": 1},
                )  # fmt: skip
                if order_id is not None:
                    self.accepted.append(order_id)
                    then = arrival.get("then")
                    if then in ("pay", "cancel"):
                        action = "confirm" if then == "pay" else "cancel"
                        self._follow_ups.append(
                            asyncio.create_task(self._follow_up(http, order_id, action))
                        )
        except (aiohttp.ClientError, TimeoutError) as exc:
            code = f"error:{type(exc).__name__}"
        self.results.append(
            Result(planned, sent - self._start, loop.time() - sent, arrival["action"], code)
        )

    async def _call(
        self, http: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str],
        body: Any = None,
    ) -> tuple[str, str | None]:  # fmt: skip
        async with http.request(method, path, json=body, headers=headers) as response:
            answer = await response.json(content_type=None)
        if response.status == 201 and isinstance(answer, dict) and "order_id" in answer:
            return "201", str(answer["order_id"])
        if response.status < 300:
            return str(response.status), None
        code = answer.get("code") if isinstance(answer, dict) else None
        return str(code or response.status), None

    async def _follow_up(self, http: aiohttp.ClientSession, order_id: str, action: str) -> None:
        await asyncio.sleep(random.uniform(0.2, 1.0) / self.speed)  # entering card details
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            code, _ = await self._call(http, "POST", f"/v1/orders/{order_id}/{action}", {})
        except (aiohttp.ClientError, TimeoutError) as exc:
            code = f"error:{type(exc).__name__}"
        self.results.append(Result(-1.0, sent - self._start, loop.time() - sent, action, code))


def percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def schedule_fidelity(results: list[Result]) -> dict[str, float]:
    """How closely the sends kept to the log: lateness of each send, and the worst relative
    difference between planned and actual arrivals per second (busy seconds only)."""
    scheduled = [r for r in results if r.planned >= 0]
    lateness = [max(0.0, r.sent - r.planned) * 1000 for r in scheduled]
    planned = Counter(int(r.planned) for r in scheduled)
    actual = Counter(int(r.sent) for r in scheduled)
    busy = [s for s, n in planned.items() if n >= 20]
    worst = max((abs(actual[s] - planned[s]) / planned[s] for s in busy), default=0.0)
    return {
        "late_p50_ms": percentile(lateness, 50),
        "late_p99_ms": percentile(lateness, 99),
        "worst_second_deviation": worst,
    }


def summary(results: list[Result]) -> str:
    by_outcome: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in results:
        by_outcome[(r.action, r.code)].append(r.latency * 1000)
    lines = [
        f"{'action':<8} {'outcome':<22} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    ]
    for (action, code), latencies in sorted(by_outcome.items()):
        lines.append(
            f"{action:<8} {code:<22} {len(latencies):>7} {percentile(latencies, 50):>8.1f} "
            f"{percentile(latencies, 95):>8.1f} {percentile(latencies, 99):>8.1f}"
        )
    fidelity = schedule_fidelity(results)
    lines.append(
        f"schedule: sends late by p50 {fidelity['late_p50_ms']:.1f} ms, "
        f"p99 {fidelity['late_p99_ms']:.1f} ms; worst second off by "
        f"{fidelity['worst_second_deviation']:.1%} of its planned arrivals"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a synthetic launch-day log")
    gen.add_argument("--users", type=int, default=2000)
    gen.add_argument("--quiet-seconds", type=float, default=10.0)
    gen.add_argument("--spike-seconds", type=float, default=10.0)
    gen.add_argument("--decay-seconds", type=float, default=10.0)
    gen.add_argument("--spike-multiple", type=float, default=10.0)
    gen.add_argument("--bot-share", type=float, default=0.1)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", type=Path, required=True)
    run = commands.add_parser("run", help="replay a log against a running engine")
    run.add_argument("--log", type=Path, required=True)
    run.add_argument("--url", required=True)
    run.add_argument("--sale", required=True)
    run.add_argument("--speed", type=float, default=1.0, help="2 replays twice as fast")
    run.add_argument("--orders-out", type=Path, help="write the order ids of every 201 here")
    run.add_argument("--results-out", type=Path, help="write every answer here (JSON lines)")
    args = parser.parse_args(argv)

    if args.command == "generate":
        shape = Shape(args.quiet_seconds, args.spike_seconds, args.decay_seconds,
                      args.spike_multiple)  # fmt: skip
        arrivals = generate(args.users, shape, args.seed, args.bot_share)
        args.out.write_text("".join(json.dumps(a) + "\n" for a in arrivals))
        print(f"wrote {len(arrivals)} arrivals over {shape.duration:g}s to {args.out}")
        return
    arrivals = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    replay = Replay(args.url, args.sale, args.speed)
    asyncio.run(replay.run(arrivals))
    print(summary(replay.results))
    if args.orders_out:
        args.orders_out.write_text("".join(f"{o}\n" for o in replay.accepted))
    if args.results_out:
        args.results_out.write_text("".join(json.dumps(r.__dict__) + "\n" for r in replay.results))


if __name__ == "__main__":
    main()
