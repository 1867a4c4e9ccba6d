"""The production order store: PostgreSQL through an asyncpg pool, connected on first use."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from flashsale.errors import SinkUnavailableError
from flashsale.events import OrderEvent
from flashsale.records import OrderRecord, OrderStatus
from flashsale.sinks import schema

# SQLSTATE classes that say "this event is wrong" (it would fail on a healthy server too):
# data exceptions (22) and integrity constraint violations (23). Every other refusal is about
# the server's state, not the event: unreachable (08), read-only (25006, as a replica after a
# failover), missing database (3D000), authentication (28), privilege (42501), too many
# connections (53300), admin shutdown (57P01), a missing schema, and so on. Those are outages:
# waited out, never dead-lettered.
_DATA_ERROR_CLASSES = frozenset({"22", "23"})


def is_outage(exc: BaseException) -> bool:
    """Whether a failure of the order store is about the store rather than the event."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] not in _DATA_ERROR_CLASSES
    # InternalClientError: the driver lost track of a connection the server ended mid-call.
    return isinstance(
        exc,
        (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError),
    )


_CONNECT_TIMEOUT_SECONDS = 5.0
# Serialises migrations of concurrent workers (an arbitrary, fixed advisory lock id).
_MIGRATION_LOCK = 7_352_101


class PostgresSink:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        parts = urlsplit(dsn)
        # Never log the password: name the server and database only.
        self.description = f"PostgreSQL at {parts.hostname}:{parts.port or 5432}{parts.path}"
        self._pool: asyncpg.Pool | None = None
        self._upsert = schema.numbered(schema.UPSERT_ORDER)
        self._select = schema.numbered(schema.SELECT_SALE_ORDERS)

    async def _ready_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            pool: asyncpg.Pool | None = None
            try:
                pool = await asyncpg.create_pool(
                    # No floor of idle connections: after the server ends them (a failover, a
                    # restart) the pool reconnects on use, not in a background task.
                    self._dsn,
                    min_size=0,
                    max_size=4,
                    timeout=_CONNECT_TIMEOUT_SECONDS,
                )
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    await _migrate(conn)
            except Exception as exc:
                # A pool whose migration failed is not kept: the next try opens a new one.
                if pool is not None:
                    pool.terminate()
                if is_outage(exc) or isinstance(exc, asyncpg.PostgresError):
                    raise SinkUnavailableError(f"cannot use {self.description}: {exc}") from exc
                raise
            self._pool = pool
        return self._pool

    async def apply(self, events: Sequence[OrderEvent]) -> None:
        pool = await self._ready_pool()
        rows = [
            (
                e.order_id, e.sale_id, e.user_id, e.quantity, e.status.value,
                e.created_at, e.expires_at, e.at, e.entry_id,
            )
            for e in events
        ]  # fmt: skip
        try:
            async with pool.acquire(timeout=_CONNECT_TIMEOUT_SECONDS) as conn, conn.transaction():
                await conn.executemany(self._upsert, rows)
        except Exception as exc:
            if is_outage(exc):
                raise SinkUnavailableError(f"{self.description} is unavailable: {exc}") from exc
            raise

    async def orders_of_sale(self, sale_id: str) -> list[OrderRecord]:
        pool = await self._ready_pool()
        try:
            records = await pool.fetch(self._select, sale_id)
        except Exception as exc:
            if is_outage(exc):
                raise SinkUnavailableError(f"{self.description} is unavailable: {exc}") from exc
            raise
        return [
            OrderRecord(
                order_id=r["order_id"], sale_id=r["sale_id"], user_id=r["user_id"],
                quantity=int(r["quantity"]), status=OrderStatus(r["status"]),
                created_at=int(r["created_at_ms"]), expires_at=int(r["expires_at_ms"]),
            )
            for r in records
        ]  # fmt: skip

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _migrate(conn: PoolConnectionProxy[asyncpg.Record]) -> None:
    """Brings the schema up to date, writing only when something is missing: a role that may
    read and write orders but not create tables works on a schema an owner migrated."""
    if await conn.fetchval("SELECT to_regclass('flashsale_schema')") is None:
        await conn.execute(schema.CREATE_VERSION_TABLE)
    version = await conn.fetchval(schema.READ_VERSION)
    if version is None:
        await conn.execute(schema.INSERT_VERSION)
        version = 0
    if version < len(schema.MIGRATIONS):
        for statements in schema.MIGRATIONS[version:]:
            for statement in statements:
                await conn.execute(statement)
        await conn.execute(schema.numbered(schema.SET_VERSION), len(schema.MIGRATIONS))
