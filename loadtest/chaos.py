"""`make chaos`: steady purchase load against `flashsale serve --workers 2` with PostgreSQL
while faults hit every part in turn; then the history checker and `flashsale audit`.

    python loadtest/chaos.py                  # ~3-4 minutes (make chaos)
    python loadtest/chaos.py --duration 30    # the CI smoke

The rig, all private and on free loopback ports: a durable redis-server (`appendfsync
always`) behind the tests' fault proxy, a PostgreSQL cluster, `flashsale serve --workers 2`
without an in-process worker, and `flashsale worker` on its own. Shoppers buy 1-3 units with
an Idempotency-Key, retry an unknown outcome with the same key, poll a 202 until it settles,
then confirm, cancel or walk away (holds expire); an operator adds stock with keys of its own.
Every call goes into a Jepsen-style history (tests/history.py).

The faults, in turn, for as long as the run lasts: Redis paused (CLIENT PAUSE), replies lost
after Redis ran the command, Redis killed -9 and restarted, an app process killed -9 (its
supervisor restarts it), the worker killed -9 and restarted, PostgreSQL read-only (as after
a failover) and then stopped.

At the end everything is healed, every 202 settled, every hold left to expire and every event
drained; the checker holds the history against Redis and PostgreSQL and `flashsale audit`
runs. It prints the operations by outcome, the faults, the checker's figures and the audit,
and exits non-zero unless the six figures are 0 and the audit is clean.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flashsale import keys  # noqa: E402
from flashsale.runtime.redis_server import RedisServer  # noqa: E402
from flashsale.sinks import open_sink  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402
from tests.helpers import ADMIN, ADMIN_TOKEN, sale_body  # noqa: E402
from tests.history import (  # noqa: E402
    History,
    Operation,
    Outcome,
    Report,
    check,
    drained,
    final_state,
    finish_order,
    purchase,
    read_order,
    settle_pending,
)
from tests.polling import eventually  # noqa: E402
from tests.servers import PostgresServer, redis_process  # noqa: E402
from tests.service import Service, flashsale_command, flashsale_service  # noqa: E402

SALES = 4
STOCK = 2000
PER_USER_LIMIT = 3
HOLD_SECONDS = 6
USERS = 3000
RESTOCK = 20
RESULTS = ROOT / "loadtest" / "results"


@dataclass
class Rig:
    redis: RedisServer
    proxy: FaultProxy
    postgres: PostgresServer
    dsn: str
    service: Service
    data_dir: Path
    env: dict[str, str]
    worker: subprocess.Popen[bytes] | None = None
    faults: list[tuple[float, str, str]] = field(default_factory=list)

    def start_worker(self) -> None:
        log = (self.data_dir / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            [flashsale_command(), "worker", "--data-dir", str(self.data_dir)],
            env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def app_processes(self) -> list[int]:
        """The service's HTTP processes (children of `serve`, not multiprocessing's helpers)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
                if int(fields[1]) == self.service.process.pid and b"spawn_main" in cmdline:
                    found.append(int(stat.parent.name))
        return sorted(found)


# --- the faults ---------------------------------------------------------------------------


async def redis_paused(rig: Rig) -> str:
    async with Redis.from_url(rig.redis.url) as direct:
        await direct.client_pause(2000, all=False)
    await asyncio.sleep(2.5)
    return "CLIENT PAUSE 2000 WRITE"


async def replies_lost(rig: Rig) -> str:
    swallowed = rig.proxy.swallow_reply(lambda c: c[0].upper() in (b"EVALSHA", b"XACK"), 6)
    await asyncio.sleep(2.5)
    return f"{len(swallowed)} replies swallowed after Redis ran the command"


async def redis_killed(rig: Rig) -> str:
    await asyncio.to_thread(rig.redis.kill)
    await asyncio.sleep(2)
    await asyncio.to_thread(rig.redis.start)
    return "redis-server killed -9, restarted 2 s later"


async def app_process_killed(rig: Rig) -> str:
    before = rig.app_processes()
    victim = random.choice(before)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = rig.app_processes()
        return victim not in now and len(now) == len(before)

    await eventually(replaced, within=60, what="the supervisor to restart the app process")
    return f"app process {victim} killed -9, restarted by its supervisor"


async def worker_killed(rig: Rig) -> str:
    assert rig.worker is not None
    rig.worker.kill()
    await asyncio.to_thread(rig.worker.wait)
    await asyncio.sleep(1)
    rig.start_worker()
    return "flashsale worker killed -9, restarted 1 s later"


async def postgres_read_only(rig: Rig) -> str:
    name = rig.dsn.rsplit("/", 1)[1]
    await _admin(rig, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on', name)
    await asyncio.sleep(3)
    await _admin(rig, f'ALTER DATABASE "{name}" RESET default_transaction_read_only', name)
    return "PostgreSQL read-only for 3 s (sessions cut, as a failover does)"


async def postgres_stopped(rig: Rig) -> str:
    await asyncio.to_thread(rig.postgres.stop)
    await asyncio.sleep(3)
    await asyncio.to_thread(rig.postgres.start)
    return "PostgreSQL stopped for 3 s"


async def _admin(rig: Rig, statement: str, database: str) -> None:
    conn = await asyncpg.connect(rig.postgres.dsn)
    try:
        await conn.execute(statement)
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()


FAULTS: list[Callable[[Rig], Awaitable[str]]] = [
    redis_paused, replies_lost, redis_killed, app_process_killed, worker_killed,
    postgres_read_only, postgres_stopped,
]  # fmt: skip


async def inject_faults(rig: Rig, until: float, calm: float) -> None:
    started = time.monotonic()
    for fault in itertools.cycle(FAULTS):
        if time.monotonic() >= until:
            return
        what = await fault(rig)
        rig.faults.append((time.monotonic() - started, fault.__name__, what))
        print(f"  {time.monotonic() - started:6.1f}s  {fault.__name__}: {what}", flush=True)
        await asyncio.sleep(calm)


# --- the load -----------------------------------------------------------------------------


async def shopper(
    http: aiohttp.ClientSession, history: History, sales: list[str], stop: asyncio.Event
) -> None:
    rng = random.Random()
    while not stop.is_set():
        sale_id, user = rng.choice(sales), f"shopper-{rng.randrange(USERS)}"
        key = uuid.uuid4().hex
        op = await _buy(http, history, sale_id, user, rng.randint(1, 3), key)
        if op.status == 202:
            op = await _settle(http, history, op)
        if op.order_id and (op.status == 201 or op.seen == "reserved"):
            roll = rng.random()
            if roll < 0.4:
                await _finish(http, history, op, "confirm")
            elif roll < 0.7:
                await _finish(http, history, op, "cancel")
            # else: walks away; the hold expires
        await asyncio.sleep(rng.uniform(0.0, 0.1))


async def _buy(
    http: aiohttp.ClientSession, history: History, sale_id: str, user: str, quantity: int,
    key: str,
) -> Operation:  # fmt: skip
    """A press, retried with the same key while its outcome is unknown or it was shed (as a
    frontend does): at most a few tries, a short pause between."""
    for _ in range(5):
        op = await purchase(http, history, sale_id, user, quantity, key)
        unknown = op.outcome is Outcome.INFO and op.order_id is None
        if not (unknown or op.status in (429, 503)):
            return op
        await asyncio.sleep(0.3)
    return op


async def _settle(http: aiohttp.ClientSession, history: History, op: Operation) -> Operation:
    """Polls the order a 202 named until it is settled; the read that settled it."""
    assert op.order_id is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        read = await read_order(http, history, op.sale_id, op.order_id)
        if read.seen not in (None, "pending"):
            return read
        await asyncio.sleep(0.5)
    return op


async def _finish(http: aiohttp.ClientSession, history: History, op: Operation, kind: str) -> None:
    for _ in range(5):
        done = await finish_order(http, history, op, kind)
        if done.outcome is Outcome.OK or done.status in (404, 409):
            return
        await asyncio.sleep(0.3)


@dataclass
class Restocks:
    acknowledged: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)


async def operator(
    http: aiohttp.ClientSession, sales: list[str], stop: asyncio.Event, restocks: Restocks
) -> None:
    """Adds stock every few seconds, each change under its own Idempotency-Key, retried with
    that key until it is acknowledged: it must be applied exactly once."""
    while not stop.is_set():
        await asyncio.sleep(3)
        sale_id, key = random.choice(sales), uuid.uuid4().hex
        for _ in range(10):
            try:
                async with http.patch(
                    f"/admin/sales/{sale_id}", json={"add_stock": RESTOCK},
                    headers={**ADMIN, "Idempotency-Key": key},
                ) as response:  # fmt: skip
                    if response.status == 200:
                        restocks.acknowledged[sale_id] += 1
                        break
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.5)
        else:
            restocks.unknown[sale_id] += 1


# --- the run ------------------------------------------------------------------------------


@asynccontextmanager
async def rig(workdir: Path) -> AsyncIterator[Rig]:
    async with AsyncExitStack() as stack:
        redis = redis_process(workdir / "redis", "--appendonly", "yes", "--appendfsync", "always")
        redis.start()
        stack.callback(redis.stop)
        proxy = FaultProxy("127.0.0.1", redis.port)
        await proxy.start()
        stack.push_async_callback(proxy.stop)
        postgres = PostgresServer()
        postgres.init()
        postgres.start()
        stack.callback(postgres.remove)

        def stop_postgres() -> None:
            with suppress(subprocess.SubprocessError):
                postgres.stop()

        stack.callback(stop_postgres)
        dsn = await postgres.new_database("chaos")
        data_dir = workdir / "data"
        env = {
            "FLASHSALE_REDIS_URL": proxy.url,
            "FLASHSALE_ORDERS_DSN": dsn,
            "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
            "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0",
            "FLASHSALE_ADMISSION_USER_RATE_PER_SECOND": "0",
            "FLASHSALE_ADMISSION_DEADLINE_SECONDS": "1.0",
            "FLASHSALE_BREAKER_OPEN_SECONDS": "0.5",
            "FLASHSALE_REDIS_CONNECT_TIMEOUT_SECONDS": "0.5",
            "FLASHSALE_WORKER_IN_PROCESS": "false",
            "FLASHSALE_WORKER_BACKOFF_MAX_SECONDS": "1.0",
        }
        service = stack.enter_context(flashsale_service(data_dir, env, "--workers", "2"))
        the_rig = Rig(redis, proxy, postgres, dsn, service, data_dir, env)
        the_rig.start_worker()

        def stop_worker() -> None:
            if the_rig.worker is not None and the_rig.worker.poll() is None:
                the_rig.worker.terminate()
                the_rig.worker.wait(20)

        stack.callback(stop_worker)
        yield the_rig


async def heal(rig: Rig) -> None:
    """Everything back up, whatever fault the run ended in."""
    rig.proxy.release()
    await rig.proxy.accept_connections()
    if rig.redis.process is None or rig.redis.process.poll() is not None:
        await asyncio.to_thread(rig.redis.start)
    if rig.worker is None or rig.worker.poll() is not None:
        rig.start_worker()


async def settle_everything(
    rig: Rig, http: aiohttp.ClientSession, history: History, sales: list[str]
) -> None:
    """Every 202 read until settled; every hold expired or finished; every event stored."""
    await settle_pending(http, history, within=60)
    async with Redis.from_url(rig.redis.url, decode_responses=True) as direct:

        async def quiet() -> bool:
            for sale_id in sales:
                if await direct.zcard(keys.holds(sale_id)) or not await drained(direct, sale_id):
                    return False
            return True

        await eventually(quiet, within=HOLD_SECONDS + 90, what="holds to end and events to drain")


async def verdict(
    rig: Rig, history: History, sales: list[str], restocks: Restocks
) -> tuple[Report, list[str]]:
    """The checker's report over every sale, and what is wrong with the restocks: each
    acknowledged add_stock applied once, each never acknowledged at most once."""
    sink = open_sink(rig.dsn, rig.data_dir)
    report = Report()
    wrong: list[str] = []
    try:
        async with Redis.from_url(rig.redis.url, decode_responses=True) as direct:
            for sale_id in sales:
                final = await final_state(direct, sale_id, sink)
                report.merge(check(history.operations, final))
                added = (final.stock_total - STOCK) / RESTOCK
                acked, unknown = restocks.acknowledged[sale_id], restocks.unknown[sale_id]
                if not acked <= added <= acked + unknown:
                    wrong.append(f"{sale_id}: {added:g} restocks applied, {acked} acknowledged")
    finally:
        await sink.close()
    return report, wrong


def run_audit(rig: Rig) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **rig.env, "FLASHSALE_REDIS_URL": rig.redis.url}
    return subprocess.run(
        [flashsale_command(), "audit", "--data-dir", str(rig.data_dir)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def main(duration: float, shoppers: int, calm: float) -> int:
    history, restocks = History(), Restocks()
    workdir = RESULTS / time.strftime("chaos-%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True)
    print(f"chaos: logs under {workdir}", flush=True)
    async with rig(workdir) as the_rig:
        timeout = aiohttp.ClientTimeout(total=5)
        connector = aiohttp.TCPConnector(limit=shoppers + 10)
        async with aiohttp.ClientSession(
            the_rig.service.url, timeout=timeout, connector=connector
        ) as http:
            sales = []
            for _ in range(SALES):
                body = sale_body(
                    stock=STOCK, per_user_limit=PER_USER_LIMIT, hold_seconds=HOLD_SECONDS
                )
                async with http.post("/admin/sales", json=body, headers=ADMIN) as created:
                    assert created.status == 201, await created.text()
                sales.append(body["sale_id"])
            print(
                f"chaos: {duration:.0f} s, {shoppers} shoppers over {SALES} sales against "
                f"`flashsale serve --workers 2` + `flashsale worker`, Redis behind a fault "
                "proxy, PostgreSQL",
                flush=True,
            )
            stop = asyncio.Event()
            started = time.monotonic()
            load = [
                asyncio.create_task(shopper(http, history, sales, stop)) for _ in range(shoppers)
            ]
            load.append(asyncio.create_task(operator(http, sales, stop, restocks)))
            await inject_faults(the_rig, started + duration, calm)
            await asyncio.sleep(calm)  # load goes on a while after the last fault
            stop.set()
            await asyncio.gather(*load)
            elapsed = time.monotonic() - started
            await heal(the_rig)
            await settle_everything(the_rig, http, history, sales)
        report, wrong_restocks = await verdict(the_rig, history, sales, restocks)
        audit = run_audit(the_rig)
    return summarize(history, report, audit, restocks, wrong_restocks, elapsed, the_rig.faults)


def summarize(
    history: History,
    report: Report,
    audit: subprocess.CompletedProcess[str],
    restocks: Restocks,
    wrong_restocks: list[str],
    elapsed: float,
    faults: list[tuple[float, str, str]],
) -> int:
    purchases = [op for op in history.operations if op.kind == "purchase"]
    print(f"\nload achieved: {len(history.operations)} operations in {elapsed:.0f} s "
          f"({len(history.operations) / elapsed:.0f}/s), {len(purchases)} purchases")  # fmt: skip
    print(f"\nfaults injected: {len(faults)}")
    for name, count in Counter(name for _at, name, _what in faults).items():
        print(f"  {count:7d}  {name}")
    print("\noperations by outcome:")
    for line, count in sorted(history.outcomes().items(), key=lambda kv: -kv[1]):
        print(f"  {count:7d}  {line}")
    print(f"\nrestocks: {sum(restocks.acknowledged.values())} acknowledged, "
          f"{sum(restocks.unknown.values())} never acknowledged; "
          f"{wrong_restocks if wrong_restocks else 'each applied once'}")  # fmt: skip
    print("\nhistory checker:")
    print("  " + report.render().replace("\n", "\n  "))
    print("\nflashsale audit:")
    print("  " + (audit.stdout + audit.stderr).strip().replace("\n", "\n  "))
    clean = report.valid and audit.returncode == 0 and not wrong_restocks
    print(f"\nchaos: {'PASSED' if clean else 'FAILED'}", flush=True)
    return 0 if clean else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=200, help="seconds of faults")
    parser.add_argument("--shoppers", type=int, default=40, help="concurrent shoppers")
    parser.add_argument("--calm", type=float, default=4, help="seconds between faults")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.duration, args.shoppers, args.calm)))
