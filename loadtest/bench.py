"""Throughput benchmark of the purchase path, every figure measured in one run on this machine.

    python loadtest/bench.py [--duration 10] [--connections 64]

It prints requests/s, p50 and p99 of: (a) a bare aiohttp JSON endpoint (the floor), (b)
successful purchases, (c) sold-out answers, (d) purchases with Redis on `appendfsync always`
against `appendonly no`, (e) a 10x overload (goodput, p99 of admitted and of shed answers,
errors, oversold), (f) a retry storm (10x the connections, each answer followed at once by
the next attempt), (g) recovery right after it, second by second, (h) purchases with
`--workers 2` against one process, (i) honest shoppers who honour Retry-After beside the
storm's bots, and (j) the waiting room's status poll against (c) - each also as a ratio to
(a) or to (b). Figures vary with the machine and its
other load: compare ratios from the same run, not numbers across runs. wrk drives (a)-(d),
(g)-(i); loadtest/open_loop.py drives (e), open loop at 2x, 5x and 10x, and (f), where
admitted and refused answers are timed apart. Load generators are pinned to the last core
when there are two or more, the servers to the others. Nothing here asserts a number: it
measures and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from load_generators import ALL_CORES, Figures, cores, p99, warm, wrk

from flashsale.runtime.redis_server import RedisServer, free_port

HERE = Path(__file__).resolve().parent
TOKEN = "bench-admin-token"  # noqa: S105 - a throwaway token for a private engine
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def wait_until_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=json.dumps(body).encode(), headers=HEADERS, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def get(url: str) -> Any:
    request = urllib.request.Request(url, headers=HEADERS)  # noqa: S310 - loopback only
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args, env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def redis(directory: Path, durable: bool) -> Iterator[str]:
    """A private redis-server, started the way the tests start theirs, on the load core."""
    with RedisServer(directory, durable=durable, prefix=cores("load")) as server:
        yield server.url


@contextmanager
def engine(redis_url: str, data_dir: Path, workers: int = 1, **settings: str) -> Iterator[str]:
    port = free_port()
    env = {
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_ADMIN_TOKEN": TOKEN,
        "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0",
        "FLASHSALE_ADMISSION_USER_RATE_PER_SECOND": "0",
        # The order-store worker would share the engine's core; the benchmark measures the
        # purchase path, so events wait in their streams (no backlog bound) meanwhile.
        "FLASHSALE_WORKER_IN_PROCESS": "false",
        "FLASHSALE_ORDERS_MAX_BACKLOG": "0",
        "FLASHSALE_LOG_LEVEL": "WARNING",
        **{f"FLASHSALE_{k.upper()}": v for k, v in settings.items()},
    }
    flashsale = str(Path(sys.executable).parent / "flashsale")
    args = [*cores("server"), flashsale, "serve", "--workers", str(workers), "--port", str(port),
            "--data-dir", str(data_dir)]  # fmt: skip
    with process(args, env):
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/healthz")
        yield base


def redis_cost(
    url: str, since: dict[str, float] | None = None, purchases: int = 0
) -> dict[str, float]:
    """Redis's own CPU seconds (user + system) and script calls so far; given `since`, what
    the purchases between cost it: CPU per purchase, purchases per script call, and the
    purchases a second one Redis core could decide for one sale at that cost (its ceiling,
    whatever the number of engine processes in front of it)."""
    import redis as redis_client

    with redis_client.Redis.from_url(url) as client:
        cpu = client.info("cpu")
        calls = client.info("commandstats")
    now = {
        "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "script_calls": float(sum(v["calls"] for k, v in calls.items()
                                  if k in ("cmdstat_evalsha", "cmdstat_eval"))),
    }  # fmt: skip
    if since is None:
        return now
    cpu_s = now["cpu_s"] - since["cpu_s"]
    script_calls = now["script_calls"] - since["script_calls"]
    per_purchase = cpu_s / max(1, purchases)
    return {
        "purchases": purchases,
        "redis_cpu_us_per_purchase": per_purchase * 1e6,
        "purchases_per_script_call": purchases / max(1.0, script_calls),
        "one_core_ceiling_per_sale": 1 / per_purchase if per_purchase else 0.0,
    }


def create_sale(base: str, stock: int) -> str:
    sale_id = f"bench-{time.monotonic_ns()}"
    status, _ = post(base + "/admin/sales", {
        "sale_id": sale_id, "sku": "BENCH", "name": "benchmark", "stock": stock,
        "per_user_limit": 1_000_000, "hold_seconds": 3600,
        "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
    })  # fmt: skip
    assert status == 201, status
    return sale_id


def generator(url: str, seconds: float, *how: str) -> dict[str, Any]:
    """loadtest/open_loop.py on the load core: its summary of every request it wrote."""
    args = [*cores("load"), sys.executable, str(HERE / "open_loop.py"), url,
            "--seconds", str(max(1, round(seconds))), *how]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    summary: dict[str, Any] = json.loads(out)
    return summary


def oversold(base: str, sale_id: str) -> int:
    sale = get(f"{base}/admin/sales/{sale_id}")
    counts = sale["counts"]
    taken = int(counts["reserved"]) + int(counts["confirmed"])
    return max(0, taken + int(sale["stock_left"]) - int(sale["stock_total"]))


def overload(base: str, capacity: float, seconds: float, multiple: int = 10) -> dict[str, Any]:
    """(e) Open loop: arrivals at `multiple` times the capacity measured in this run, each on
    an idle connection or a new one, whatever the answers do. What the generator reached is
    printed as offered_rps, never assumed."""
    sale_id = create_sale(base, 1_000_000_000)
    url = f"{base}/v1/sales/{sale_id}/purchases"
    summary = generator(url, seconds, "--rate", f"{multiple * capacity:.0f}")
    return {"asked": multiple, **summary, "oversold": oversold(base, sale_id)}


def retry_storm(base: str, seconds: float, connections: int) -> dict[str, Any]:
    """(f) Closed loop with 10x the connections capacity needs: every answer, refusals
    included, is followed at once by the next attempt."""
    sale_id = create_sale(base, 1_000_000_000)
    url = f"{base}/v1/sales/{sale_id}/purchases"
    summary = generator(url, seconds, "--closed", str(connections * 10))
    return {"connections": connections * 10, **summary, "oversold": oversold(base, sale_id)}


@dataclass
class Fairness:
    honest_shoppers: int
    presses: int
    served: int
    to_201_p50_ms: float
    to_201_p99_ms: float
    refusals_seen: int
    connection_errors: int
    bots_connections: int
    bots_answered_rps: float
    bots_goodput_rps: float


def fairness(base: str, seconds: float, connections: int, script: Path) -> Fairness:
    """(i) Honest shoppers beside bots: 50 shoppers who honour Retry-After (with jitter) and
    back off after a failed connection, while wrk's 10x connections retry at once."""
    url = f"{base}/v1/sales/{create_sale(base, 1_000_000_000)}/purchases"
    with ThreadPoolExecutor(1) as pool:
        bots = pool.submit(wrk, "bots", url, seconds, connections * 10, script)
        honest = asyncio.run(_honest_shoppers(url, seconds, 50))
        storm = bots.result()
    refused_rps = storm.non_2xx / max(1.0, round(seconds))
    return Fairness(
        honest_shoppers=50, bots_connections=connections * 10, bots_answered_rps=storm.rps,
        bots_goodput_rps=storm.rps - refused_rps, **honest,
    )  # fmt: skip


async def _honest_shoppers(url: str, seconds: float, shoppers: int) -> dict[str, Any]:
    import aiohttp

    waits: list[float] = []
    tally = {"presses": 0, "refusals_seen": 0, "connection_errors": 0}
    stop_at = time.monotonic() + seconds

    async def shopper(http: aiohttp.ClientSession, index: int) -> None:
        press = 0
        while time.monotonic() < stop_at:
            press += 1
            tally["presses"] += 1
            body = {"user_id": f"honest-{index}-{press}", "quantity": 1}
            started = time.monotonic()
            while time.monotonic() < stop_at:
                try:
                    async with http.post(url, json=body) as response:
                        if response.status == 201:
                            waits.append((time.monotonic() - started) * 1000)
                            break
                        tally["refusals_seen"] += 1
                        wait = float(response.headers.get("Retry-After", "1"))
                except (aiohttp.ClientError, TimeoutError):
                    tally["connection_errors"] += 1
                    wait = 0.5
                await asyncio.sleep(wait * random.uniform(0.5, 1.5))

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(shopper(http, i) for i in range(shoppers)))
    return {
        **tally, "served": len(waits),
        "to_201_p50_ms": statistics.median(waits) if waits else 0.0,
        "to_201_p99_ms": p99(waits),
    }  # fmt: skip


# Waiters in (j): wrk polls them in turn, in the order they joined, so that at ~10,000 polls a
# second each is polled every ~2 s - as their pages would (poll_after, 2 s): no sooner than
# the engine allows (1 s), and before a waiter who stops polling loses the place (6 s).
ROOM_WAITERS = 20_000


def room_polls(base: str, seconds: float, connections: int, scratch: Path) -> Figures:
    """(j) The waiting room's status poll - answered by the process from what it keeps, no
    script - for ROOM_WAITERS waiters of a room that opens in ten minutes, each polled in
    turn, as their pages would."""
    sale_id = f"bench-room-{time.monotonic_ns()}"
    opens = time.time() + 600
    status, _ = post(base + "/admin/sales", {
        "sale_id": sale_id, "sku": "BENCH", "name": "waiting room", "stock": 100,
        "starts_at": _rfc3339(opens), "ends_at": _rfc3339(opens + 3600),
        "waiting_room": {"enabled": True, "admit_per_second": 100},
    })  # fmt: skip
    assert status == 201, status
    paths = asyncio.run(_join_room(base, sale_id, ROOM_WAITERS))
    listing = scratch / "room-polls.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = scratch / "room-polls.lua"
    script.write_text(
        "-- wrk: GETs each waiter's status in turn (written by loadtest/bench.py)\n"
        f"local paths = {{}}\nfor line in io.lines({str(listing)!r}) do "
        "paths[#paths + 1] = line end\n"
        "local i = 0\n"
        "request = function()\n  i = i % #paths + 1\n  return wrk.format('GET', paths[i])\nend\n"
    )
    # A first pass over every waiter, as their pages' first polls: each process looks a
    # waiter's place up once; the pass measured is the steady state after it.
    url = base + paths[0]
    wrk("first polls", url, 2, connections, script)
    return wrk("room status polls", url, seconds, connections, script)


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


async def _join_room(base: str, sale_id: str, waiters: int) -> list[str]:
    """Joins `waiters` users; the path of each one's status."""
    import aiohttp

    limit = asyncio.Semaphore(64)

    async def join(http: aiohttp.ClientSession, index: int) -> str:
        async with limit, http.post(
            f"{base}/v1/sales/{sale_id}/queue", json={"user_id": f"waiter-{index}"}
        ) as response:  # fmt: skip
            assert response.status == 201, await response.text()
            return str(response.headers["Location"])

    async with aiohttp.ClientSession() as http:
        return await asyncio.gather(*(join(http, i) for i in range(waiters)))


def recovery(base: str, connections: int, script: Path) -> list[Figures]:
    """(g) Right after the storm: the ordinary load, one second at a time."""
    url = f"{base}/v1/sales/{create_sale(base, 1_000_000_000)}/purchases"
    return [wrk(f"second {i + 1} after", url, 1, connections, script) for i in range(3)]


def run(seconds: float, connections: int) -> dict[str, Any]:
    results: dict[str, Any] = {"cores": ALL_CORES, "seconds": seconds, "connections": connections}
    script = HERE / "purchase.lua"
    with tempfile.TemporaryDirectory(prefix="flashsale-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        port = free_port()
        stack.enter_context(process(
            [*cores("server"), sys.executable, str(HERE / "floor_app.py"), "--port", str(port)]
        ))  # fmt: skip
        floor_url = f"http://127.0.0.1:{port}/"
        wait_until_up(floor_url)
        # The same POST with a JSON body that purchases get: the floor parses it too.
        warm(floor_url, script, connections)
        floor = wrk("(a) floor: bare aiohttp JSON", floor_url, seconds, connections, script)
        stack.close()

        measured = [floor]
        for durable in (True, False):
            with (
                redis(root / f"redis-{durable}", durable) as redis_url,
                engine(redis_url, root / f"data-{durable}") as base,
            ):
                sale = create_sale(base, 1_000_000_000)
                url = f"{base}/v1/sales/{sale}/purchases"
                warm(url, script, connections)
                sale = create_sale(base, 1_000_000_000)  # a fresh one: only measured purchases
                url = f"{base}/v1/sales/{sale}/purchases"
                label = "appendfsync always" if durable else "appendonly no"
                before = redis_cost(redis_url)
                measured.append(wrk(f"purchases, {label}", url, seconds, connections, script))
                held = int(get(f"{base}/admin/sales/{sale}")["counts"]["reserved"])
                results[f"redis, {label}"] = redis_cost(redis_url, before, held)
                if durable:
                    gone = create_sale(base, 1)
                    post(f"{base}/v1/sales/{gone}/purchases", {"user_id": "first", "quantity": 1})
                    url = f"{base}/v1/sales/{gone}/purchases"
                    warm(url, script, connections)
                    measured.append(wrk("sold-out answers", url, seconds, connections, script))
                    measured.append(room_polls(base, seconds, connections, root))
                    capacity = measured[1].rps
                    results["sweep"] = [
                        overload(base, capacity, seconds, multiple) for multiple in (2, 5, 10)
                    ]
                    results["storm"] = retry_storm(base, seconds, connections)
                    results["fairness"] = asdict(fairness(base, seconds, connections, script))
                    results["recovery"] = [asdict(f) for f in recovery(base, connections, script)]
                    with engine(redis_url, root / "data-workers-2", workers=2) as two:
                        url = f"{two}/v1/sales/{create_sale(two, 1_000_000_000)}/purchases"
                        warm(url, script, connections)
                        results["workers_2"] = asdict(
                            wrk("purchases, --workers 2", url, seconds, connections, script)
                        )
        results["figures"] = [asdict(f) for f in measured]
    return results


def report(results: dict[str, Any]) -> str:
    figures = {f["name"]: f for f in results["figures"]}
    floor = results["figures"][0]["rps"]
    lines = [
        f"flashsale benchmark: {results['cores']} cores, {results['seconds']:g}s per scenario, "
        f"{results['connections']} connections, {results['network']}",
        f"{'scenario':<40} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs floor':>9}",
    ]
    for label, name in [
        ("(a) floor: bare aiohttp JSON", "(a) floor: bare aiohttp JSON"),
        ("(b) purchases (appendfsync always)", "purchases, appendfsync always"),
        ("(c) sold-out answers", "sold-out answers"),
        ("(d) purchases (appendonly no)", "purchases, appendonly no"),
    ]:
        f = figures[name]
        lines.append(
            f"{label:<40} {f['rps']:>10.0f} {f['p50_ms']:>8.2f} {f['p99_ms']:>8.2f} "
            f"{f['rps'] / floor:>8.0%}" + (f"  ({f['non_2xx']} non-2xx)" if "sold" not in name
                                             and f["non_2xx"] else "")
        )  # fmt: skip
    always = figures["purchases, appendfsync always"]["rps"]
    no_aof = figures["purchases, appendonly no"]["rps"]
    lines.append(f"(d) appendfsync always / appendonly no: {always / no_aof:.0%}")
    for label in ("appendfsync always", "appendonly no"):
        r = results[f"redis, {label}"]
        lines.append(
            f"    Redis ({label}) in (b)/(d): {r['redis_cpu_us_per_purchase']:.1f} us of its "
            f"CPU per purchase, {r['purchases_per_script_call']:.1f} purchases per script "
            f"call: one Redis core could decide ~{r['one_core_ceiling_per_sale']:,.0f} "
            "purchases/s for one sale at that cost"
        )
    lines.append(
        "(e) open loop; (f) retry storm. goodput = 201s within 1 s; admitted = 201/409, "
        "refused = 429/503 (p50/p99 ms); conn fail = connections refused or reset"
    )
    lines.append(
        f"{'':<14}{'offered':>9}{'goodput':>9}{'admitted':>16}{'max':>7}{'refused':>16}"
        f"{'share':>7}{'conn fail':>10}{'errors':>7}{'oversold':>9}"
    )
    for o in [*results["sweep"], results["storm"]]:
        label = (f"(e) asked {o['asked']}x" if "asked" in o
                 else f"(f) {o['connections']} conns")  # fmt: skip
        errors = sum(n for status, n in o["other_statuses"].items() if status != "202")
        lines.append(
            f"{label:<14}{o['offered_rps'] / always:>8.1f}x{o['goodput_rps'] / always:>9.0%}"
            f"{o['admitted_p50_ms']:>8.0f}/{o['admitted_p99_ms']:<7.0f}{o['admitted_max_ms']:>7.0f}"
            f"{o['refused_p50_ms']:>8.0f}/{o['refused_p99_ms']:<7.0f}"
            f"{o['refused'] / max(1, o['answered']):>7.0%}{o['connection_failures']:>10}"
            f"{errors:>7}{o['oversold']:>9}"
        )
        if o["generator_full"] or o["unanswered"]:
            lines.append(
                f"{'':<14}generator: {o['generator_full']} arrivals not sent (at its "
                f"connection cap), {o['unanswered']} unanswered at the end, its lag p99 "
                f"{o['generator_lag_p99_ms']:.0f} ms"
            )
    seconds_after = ", ".join(
        f"{f['rps'] / always:.0%} ({f['non_2xx']} refused)" for f in results["recovery"]
    )
    lines.append(f"(g) recovery, each second after the storm, vs capacity: {seconds_after}")
    two = results["workers_2"]
    lines.append(
        f"(h) purchases with --workers 2: {two['rps']:.0f} req/s, {two['rps'] / always:.2f}x "
        f"one process (on {max(1, results['cores'] - 1)} server core(s))"
    )
    polls, sold_out = figures["room status polls"], figures["sold-out answers"]
    lines.append(
        f"(j) waiting-room status polls: {polls['rps']:.0f} req/s, p50 {polls['p50_ms']:.2f} "
        f"ms, p99 {polls['p99_ms']:.2f} ms ({polls['non_2xx']} non-2xx); a poll costs "
        f"{sold_out['rps'] / polls['rps']:.2f}x a sold-out answer of (c)"
    )
    fair = results["fairness"]
    lines.append(
        f"(i) {fair['honest_shoppers']} honest shoppers (honour Retry-After, jitter) beside "
        f"{fair['bots_connections']} bot connections: {fair['served']} of {fair['presses']} "
        f"presses served, time to a 201 p50 {fair['to_201_p50_ms']:.0f} ms, p99 "
        f"{fair['to_201_p99_ms']:.0f} ms ({fair['refusals_seen']} refusals, "
        f"{fair['connection_errors']} connection errors met); bots' goodput "
        f"{fair['bots_goodput_rps']:.0f} req/s"
    )
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> Path:
    """Goodput and admitted p99 against the load the generator reached, as shares of
    capacity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    capacity = next(f["rps"] for f in results["figures"] if "always" in f["name"])
    sweep = sorted(results["sweep"], key=lambda o: o["offered_rps"])
    offered = [o["offered_rps"] / capacity for o in sweep]
    figure, goodput_axis = plt.subplots(figsize=(7, 4.5))
    goodput_axis.plot(offered, [o["goodput_rps"] / capacity for o in sweep], "o-",
                      label="goodput (201s) / capacity")  # fmt: skip
    goodput_axis.plot([0, max([*offered, 1.0])], [0.8, 0.8], ":", color="grey",
                      label="target: 80% of capacity")  # fmt: skip
    goodput_axis.set_xlabel("offered load / capacity (what the open-loop generator reached)")
    goodput_axis.set_ylabel("share of capacity")
    goodput_axis.set_ylim(0, 1.2)
    latency_axis = goodput_axis.twinx()
    latency_axis.plot(offered, [o["admitted_p99_ms"] for o in sweep], "s--", color="tab:red",
                      label="admitted p99 (ms)")  # fmt: skip
    latency_axis.set_ylabel("admitted p99, ms")
    for o, x in zip(sweep, offered, strict=True):
        goodput_axis.annotate(f"asked {o['asked']}x", (x, o["goodput_rps"] / capacity))
    figure.legend(loc="lower left", bbox_to_anchor=(0.1, 0.14))
    goodput_axis.set_title(f"flashsale under overload ({results['cores']} cores, one process)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# The listen-queue settings docs/operations.md tells operators to set on an engine's host,
# and the benchmark runs under (per network namespace, so the host's own are left alone).
ENGINE_HOST_SYSCTLS = {"net.ipv4.tcp_abort_on_overflow": "1", "net.ipv4.tcp_syncookies": "0"}
NETNS_ENV = "FLASHSALE_BENCH_NETNS"


def rerun_in_own_network(argv: list[str]) -> int | None:
    """Runs this benchmark again inside a network namespace of its own, under
    ENGINE_HOST_SYSCTLS: an overflowing listen queue then resets a connection at once,
    instead of hiding it for seconds (tcp_abort_on_overflow) or for good (a SYN cookie's
    connection, measured: docs/operations.md). None when that cannot be done here (not
    root, no iproute2): the run goes on in the host's network, and the report says which
    settings it ran under."""
    if os.environ.get(NETNS_ENV) or os.geteuid() != 0 or shutil.which("ip") is None:
        return None
    name = f"flashsale-bench-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        return None
    sysctls = " ".join(f"{key}={value}" for key, value in ENGINE_HOST_SYSCTLS.items())
    try:
        inside = f'ip link set lo up && sysctl -qw {sysctls} && exec "$@"'
        return subprocess.run(
            ["ip", "netns", "exec", name, "sh", "-c", inside, "sh",
             sys.executable, *argv],
            env={**os.environ, NETNS_ENV: name},
        ).returncode  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def network_setting() -> str:
    where = os.environ.get(NETNS_ENV)
    place = f"its own network namespace {where}" if where else "the host's network"
    values = []
    for key in ENGINE_HOST_SYSCTLS:
        path = Path("/proc/sys") / key.replace(".", "/")
        values.append(
            f"{key.rsplit('.', 1)[-1]} = {path.read_text().strip() if path.exists() else '?'}"
        )
    return f"in {place}, {', '.join(values)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--chart", type=Path, default=HERE / "results" / "bench-goodput.png",
        help="where to draw goodput against offered load",
    )  # fmt: skip
    parser.add_argument(
        "--host-network", action="store_true",
        help="run in the host's network, under its listen-queue settings",
    )  # fmt: skip
    args = parser.parse_args()
    if not args.host_network:
        code = rerun_in_own_network(sys.argv)
        if code is not None:
            sys.exit(code)
    results = run(args.duration, args.connections)
    results["network"] = network_setting()
    print(report(results))
    print(f"chart: {chart(results, args.chart)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
