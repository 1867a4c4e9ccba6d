"""Order stores the worker hands events to: SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from flashsale.events import OrderEvent
from flashsale.records import OrderRecord

SQLITE_FILE = "orders.sqlite3"


class OrderSink(Protocol):
    """Applies order events idempotently: one row per order, whose state only moves forward."""

    description: str

    async def apply(self, events: Sequence[OrderEvent]) -> None:
        """All events in one transaction; raises SinkUnavailableError when the store is out
        of reach."""

    async def orders_of_sale(self, sale_id: str) -> list[OrderRecord]: ...

    async def close(self) -> None: ...


def open_sink(dsn: str, data_dir: Path) -> OrderSink:
    """The store `dsn` names (empty: SQLite in `data_dir`). Connects lazily, on first use."""
    if dsn.startswith(("postgresql://", "postgres://")):
        from flashsale.sinks.postgres import PostgresSink

        return PostgresSink(dsn)
    from flashsale.sinks.sqlite import SqliteSink

    if dsn.startswith("sqlite:"):
        return SqliteSink(Path(dsn.removeprefix("sqlite:").removeprefix("//")))
    return SqliteSink(data_dir / SQLITE_FILE)
