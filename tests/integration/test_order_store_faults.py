"""An order store that refuses because of its own state is an outage, not bad data: the
worker waits it out with growing delays and dead-letters nothing; only events the store
would refuse when healthy are dead-lettered, and those can be replayed once fixed."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from flashsale import keys
from flashsale.errors import SinkUnavailableError
from flashsale.events import OrderEvent
from flashsale.metrics import Metrics
from flashsale.records import OrderRecord
from flashsale.settings import Settings
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.active_sales import ActiveSales
from flashsale.store.dead_letters import DeadLetters
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from flashsale.worker.audit import audit_sale
from flashsale.worker.retry import BACKOFF_START_SECONDS
from flashsale.worker.worker import Worker
from tests.integration.test_lifecycle_scripts import reserve
from tests.integration.test_order_queue import RefusesOrder, stored_states, worker_settings
from tests.integration.test_purchase_script import new_sale
from tests.polling import eventually
from tests.servers import PostgresServer


@dataclass
class Fault:
    """A way to make a healthy PostgreSQL refuse the worker, and to undo it."""

    dsn: str  # what the worker is given
    start: Callable[[], Awaitable[None]]
    fix: Callable[[], Awaitable[None]]


async def admin_execute(server: PostgresServer, *statements: str, database: str = "") -> None:
    dsn = server.dsn if not database else server.dsn.rsplit("/", 1)[0] + f"/{database}"
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def database_of(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1]


async def migrated_database(server: PostgresServer) -> str:
    dsn = await server.new_database("faults")
    sink = open_sink(dsn, Path("unused"))
    await sink.orders_of_sale("nothing")  # connects and migrates
    await sink.close()
    return dsn


def disconnect_others(name: str) -> str:
    """Ends the database's other sessions: settings changed above apply to new ones only."""
    return (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608 - a name the test made
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )


async def read_only(server: PostgresServer) -> Fault:
    """As a primary demoted to a replica by a failover: 25006 on every write."""
    dsn = await migrated_database(server)
    name = database_of(dsn)
    return Fault(
        dsn,
        lambda: admin_execute(
            server,
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = on',
            disconnect_others(name),
        ),
        lambda: admin_execute(
            server,
            f'ALTER DATABASE "{name}" RESET default_transaction_read_only',
            disconnect_others(name),
        ),
    )


async def no_privilege(server: PostgresServer) -> Fault:
    """The worker's role lost its right to write (42501), as after a bad grant."""
    owner_dsn = await migrated_database(server)
    name = database_of(owner_dsn)
    role = f"writer_{name}"
    await admin_execute(server, f"CREATE ROLE {role} LOGIN")
    await admin_execute(
        server, f"GRANT USAGE ON SCHEMA public TO {role}", database=name
    )  # fmt: skip
    grant = f"GRANT SELECT, INSERT, UPDATE ON orders, flashsale_schema TO {role}"
    revoke = f"REVOKE INSERT, UPDATE ON orders FROM {role}"
    worker_dsn = owner_dsn.replace("postgres@", f"{role}@", 1)
    return Fault(
        worker_dsn,
        lambda: admin_execute(server, grant, revoke, database=name),
        lambda: admin_execute(server, grant, database=name),
    )


async def missing_database(server: PostgresServer) -> Fault:
    """The DSN names a database that is not there (3D000), until an operator creates it."""
    name = f"later_{time.monotonic_ns()}"
    dsn = server.dsn.rsplit("/", 1)[0] + f"/{name}"

    async def nothing() -> None:
        pass

    return Fault(dsn, nothing, lambda: admin_execute(server, f'CREATE DATABASE "{name}"'))


FAULTS = {"read_only": read_only, "no_privilege": no_privilege, "missing_db": missing_database}


@pytest.fixture(params=sorted(FAULTS))
async def fault(request: pytest.FixtureRequest, postgres: PostgresServer) -> Fault:
    return await FAULTS[request.param](postgres)


@pytest.fixture
async def workers_during_outage(
    redis: Redis, settings: Settings, fault: Fault
) -> AsyncIterator[list[Metrics]]:
    """Two workers on the faulty store, reclaiming each other's entries quickly (which raises
    their delivery counts, as a long outage with several workers does)."""
    quick = worker_settings(
        settings, worker_claim_idle_seconds=0.05, worker_max_deliveries=2,
        worker_backoff_max_seconds=0.1,
    )  # fmt: skip
    sinks = [open_sink(fault.dsn, Path("unused")) for _ in range(2)]
    metrics = [Metrics(), Metrics()]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(Worker(redis, Scripts.register(redis), sink, quick, m).run(stop))
        for sink, m in zip(sinks, metrics, strict=True)
    ]
    yield metrics
    stop.set()
    await asyncio.gather(*tasks)
    for sink in sinks:
        await sink.close()


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def test_a_refusing_postgresql_is_waited_out_and_nothing_dead_lettered(
    store: SaleStore,
    redis: Redis,
    fault: Fault,
    workers_during_outage: list[Metrics],
) -> None:
    metrics = workers_during_outage
    await fault.start()
    sale = await new_sale(store, stock=20, per_user_limit=1)
    orders = [await reserve(store, sale.sale_id, f"f{i}") for i in range(6)]
    await store.confirm(orders[0])
    await store.cancel(orders[1])

    def refused_a_while() -> bool:
        tries = sum(sample(m, "flashsale_order_store_failures_total", {"kind": "unavailable"})
                    for m in metrics)  # fmt: skip
        return tries >= 20 and all(sample(m, "flashsale_order_store_up") == 0 for m in metrics)

    await eventually(refused_a_while, within=20, what="both workers to meet the outage")
    assert await redis.xlen(keys.dead_letters(sale.sale_id)) == 0
    assert sum(sample(m, "flashsale_order_events_dead_lettered_total") for m in metrics) == 0
    assert sum(sample(m, "flashsale_order_store_failures_total", {"kind": "data"})
               for m in metrics) == 0  # fmt: skip

    await fault.fix()
    # A reader of its own: the fix ended the sessions the workers' pools held.
    reader = open_sink(fault.dsn, Path("unused"))

    async def all_stored() -> bool:
        return len(await stored_states(reader, sale.sale_id)) == len(orders)

    try:
        await eventually(all_stored, within=20, what="the orders to reach PostgreSQL")
        assert await redis.xlen(keys.dead_letters(sale.sale_id)) == 0
        assert (await audit_sale(redis, reader, sale.sale_id)).violations == []
    finally:
        await reader.close()


class CallTimes:
    """The real (unreachable) store, with the moment of every try written down."""

    def __init__(self, real: OrderSink) -> None:
        self.real = real
        self.description = real.description
        self.tries: list[float] = []

    async def apply(self, events: Sequence[OrderEvent]) -> None:
        self.tries.append(time.monotonic())
        await self.real.apply(events)

    async def orders_of_sale(self, sale_id: str) -> list[OrderRecord]:
        return await self.real.orders_of_sale(sale_id)

    async def close(self) -> None:
        await self.real.close()


async def test_the_delay_between_tries_doubles_up_to_its_cap(
    store: SaleStore, redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the order store's directory should be")
    sink = CallTimes(open_sink(f"sqlite:{blocker / 'orders.sqlite3'}", tmp_path))
    cap = 0.4
    worker = Worker(
        redis, Scripts.register(redis), sink,
        worker_settings(settings, worker_backoff_max_seconds=cap), Metrics(),
    )  # fmt: skip
    sale = await new_sale(store, stock=5)
    await reserve(store, sale.sale_id, "b1")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await eventually(lambda: len(sink.tries) >= 7, within=15, what="seven tries")
    stop.set()
    await task
    # The tries before the stop (which cuts the last pause short).
    tries = sink.tries[:7]
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    wanted = [min(BACKOFF_START_SECONDS * 2**i, cap) for i in range(len(gaps))]
    # A loaded machine can only make a pause longer, never shorter.
    assert all(gap >= want * 0.9 for gap, want in zip(gaps, wanted, strict=True)), (gaps, wanted)
    assert gaps[4] > 3 * wanted[0], "the delay does not grow"
    with pytest.raises(SinkUnavailableError):
        await sink.real.apply([])


async def test_dead_letters_replay_once_the_cause_is_fixed(
    store: SaleStore, redis: Redis, sink: OrderSink, settings: Settings
) -> None:
    sale = await new_sale(store, stock=10, per_user_limit=1)
    refused = await reserve(store, sale.sale_id, "refused")
    others = [await reserve(store, sale.sale_id, f"ok{i}") for i in range(2)]
    scripts = Scripts.register(redis)
    quick = worker_settings(settings)
    await Worker(redis, scripts, RefusesOrder(sink, refused), quick, Metrics()).burst()
    assert set(await stored_states(sink, sale.sale_id)) == set(others)
    letters = DeadLetters(redis, scripts, ActiveSales(redis, scripts))
    [dead] = await letters.newest(10, sale.sale_id)
    assert dead.event["order_id"] == refused

    replayed = await letters.replay(sale.sale_id)
    assert [r.dead_letter_id for r in replayed] == [dead.dead_letter_id]
    assert await letters.replay(sale.sale_id) == []  # twice changes nothing
    assert await letters.newest(10, sale.sale_id) == []
    await Worker(redis, scripts, sink, quick, Metrics()).burst()  # the fixed store
    assert set(await stored_states(sink, sale.sale_id)) == {refused, *others}
    assert (await audit_sale(redis, sink, sale.sale_id)).violations == []
