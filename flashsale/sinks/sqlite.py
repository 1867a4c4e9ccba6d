"""The embedded order store: one SQLite file, WAL, synchronous=FULL (durable at commit)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from flashsale.errors import SinkUnavailableError
from flashsale.events import OrderEvent
from flashsale.records import OrderRecord, OrderStatus
from flashsale.sinks import schema


def is_outage(exc: BaseException) -> bool:
    """Locked, read-only, unreadable, out of disk, missing table: the file's state, not the
    event's. Only integrity and data errors are the event's own."""
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError)):
        return False
    return isinstance(exc, (sqlite3.DatabaseError, OSError))


class SqliteSink:
    """Order store in a SQLite file; opened and migrated on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"SQLite at {path}"
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()  # one transaction at a time on the one connection

    async def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            db: aiosqlite.Connection | None = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = await aiosqlite.connect(self.path, isolation_level=None)
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=FULL")
                await db.execute("PRAGMA busy_timeout=5000")
                await _migrate(db)
            except (OSError, sqlite3.DatabaseError) as exc:
                if db is not None:  # a connection whose migration failed is not kept
                    await db.close()
                raise SinkUnavailableError(f"cannot open {self.path}: {exc}") from exc
            self._db = db
        return self._db

    async def apply(self, events: Sequence[OrderEvent]) -> None:
        rows = [_row(event) for event in events]
        async with self._lock:
            db = await self._connection()
            try:
                await db.execute("BEGIN IMMEDIATE")
                await db.executemany(schema.UPSERT_ORDER, rows)
                await db.execute("COMMIT")
            except BaseException as exc:
                await _rollback(db)
                if is_outage(exc):
                    raise SinkUnavailableError(f"SQLite refused the write: {exc}") from exc
                raise

    async def orders_of_sale(self, sale_id: str) -> list[OrderRecord]:
        async with self._lock:
            db = await self._connection()
            async with db.execute(schema.SELECT_SALE_ORDERS, (sale_id,)) as cursor:
                rows = await cursor.fetchall()
        return [
            OrderRecord(
                order_id=r[0], sale_id=r[1], user_id=r[2], quantity=int(r[3]),
                status=OrderStatus(r[4]), created_at=int(r[5]), expires_at=int(r[6]),
            )
            for r in rows
        ]  # fmt: skip

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None


def _row(event: OrderEvent) -> tuple[object, ...]:
    return (
        event.order_id, event.sale_id, event.user_id, event.quantity, event.status.value,
        event.created_at, event.expires_at, event.at, event.entry_id,
    )  # fmt: skip


async def _rollback(db: aiosqlite.Connection) -> None:
    if db.in_transaction:
        await db.execute("ROLLBACK")


async def _migrate(db: aiosqlite.Connection) -> None:
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute(schema.CREATE_VERSION_TABLE)
        async with db.execute(schema.READ_VERSION) as cursor:
            row = await cursor.fetchone()
        if row is None:
            await db.execute(schema.INSERT_VERSION)
        version = 0 if row is None else int(row[0])
        for statements in schema.MIGRATIONS[version:]:
            for statement in statements:
                await db.execute(statement)
        await db.execute(schema.SET_VERSION, (len(schema.MIGRATIONS),))
        await db.execute("COMMIT")
    except BaseException:
        await _rollback(db)
        raise
