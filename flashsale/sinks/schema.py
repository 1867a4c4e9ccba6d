"""The order store's schema and statements, in SQL that SQLite and PostgreSQL both accept.

Times are integer milliseconds since the epoch (as in Redis). `last_event_id` is the stream
entry that last changed the row, for tracing an order back to its event.
"""

from __future__ import annotations

# Each entry migrates the schema from version i to i + 1; append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            sale_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity >= 1),
            status TEXT NOT NULL
                CHECK (status IN ('reserved', 'confirmed', 'cancelled', 'expired')),
            created_at_ms BIGINT NOT NULL,
            expires_at_ms BIGINT NOT NULL,
            updated_at_ms BIGINT NOT NULL,
            last_event_id TEXT NOT NULL
        )""",
        "CREATE INDEX orders_by_sale ON orders (sale_id, status)",
    ),
)

CREATE_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS flashsale_schema (version INTEGER NOT NULL)"
READ_VERSION = "SELECT version FROM flashsale_schema"
INSERT_VERSION = "INSERT INTO flashsale_schema (version) VALUES (0)"
SET_VERSION = "UPDATE flashsale_schema SET version = ?"

# A state only moves forward: a row leaves 'reserved' once, for a final state, and a replayed
# or late event changes nothing.
UPSERT_ORDER = """
INSERT INTO orders (order_id, sale_id, user_id, quantity, status, created_at_ms,
                    expires_at_ms, updated_at_ms, last_event_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (order_id) DO UPDATE SET
    status = excluded.status,
    updated_at_ms = excluded.updated_at_ms,
    last_event_id = excluded.last_event_id
WHERE orders.status = 'reserved' AND excluded.status <> 'reserved'
"""

SELECT_SALE_ORDERS = """
SELECT order_id, sale_id, user_id, quantity, status, created_at_ms, expires_at_ms
FROM orders WHERE sale_id = ?
"""


def numbered(statement: str) -> str:
    """PostgreSQL's $1, $2, … in place of the ? placeholders SQLite takes."""
    parts = statement.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]
