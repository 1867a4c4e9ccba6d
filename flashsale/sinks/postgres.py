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

# Failures that say "the server is not there (now)", as opposed to "this data is wrong".
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.CannotConnectNowError,
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
            try:
                pool = await asyncpg.create_pool(
                    self._dsn, min_size=1, max_size=4, timeout=_CONNECT_TIMEOUT_SECONDS
                )
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    await _migrate(conn)
            except _UNAVAILABLE as exc:
                raise SinkUnavailableError(f"cannot reach {self.description}: {exc}") from exc
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
        except _UNAVAILABLE as exc:
            raise SinkUnavailableError(f"{self.description} is unavailable: {exc}") from exc

    async def orders_of_sale(self, sale_id: str) -> list[OrderRecord]:
        pool = await self._ready_pool()
        try:
            records = await pool.fetch(self._select, sale_id)
        except _UNAVAILABLE as exc:
            raise SinkUnavailableError(f"{self.description} is unavailable: {exc}") from exc
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
    await conn.execute(schema.CREATE_VERSION_TABLE)
    version = await conn.fetchval(schema.READ_VERSION)
    if version is None:
        await conn.execute(schema.INSERT_VERSION)
        version = 0
    for statements in schema.MIGRATIONS[version:]:
        for statement in statements:
            await conn.execute(statement)
    await conn.execute(schema.numbered(schema.SET_VERSION), len(schema.MIGRATIONS))
