"""The whole order lifecycle through HTTP against `flashsale serve`, then `flashsale audit`.

Shoppers buy at once; some pay, some cancel (and others buy the returned units), some walk
away and their holds expire. Afterwards every 201 is in the order store exactly once with the
state Redis has, and the audit is clean — with SQLite and with PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from flashsale.runtime.admin_token import TOKEN_FILE
from flashsale.sinks import SQLITE_FILE
from tests.helpers import sale_body
from tests.polling import eventually
from tests.servers import PostgresServer
from tests.service import flashsale_service, run_flashsale

pytestmark = pytest.mark.slow

HOLD_SECONDS = 2
# The contract: a lapsed hold is released within one second. The slack covers the polling
# here and scheduling noise on a shared machine.
RELEASE_SLACK_SECONDS = 0.6


def run_audit(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_flashsale("audit", "--data-dir", str(data_dir), env=env)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_env(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    """Environment naming the order store: SQLite by default, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield {}
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    yield {"FLASHSALE_ORDERS_DSN": await server.new_database("lifecycle")}


async def stored_orders(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    dsn = env.get("FLASHSALE_ORDERS_DSN")
    if dsn is None:
        path = data_dir / SQLITE_FILE
        if not path.exists():
            return {}  # the worker has not written its first batch yet
        try:
            with sqlite3.connect(path) as db:
                rows = db.execute("SELECT order_id, status FROM orders").fetchall()
        except sqlite3.OperationalError:  # created, not yet migrated
            return {}
        return {str(order_id): str(status) for order_id, status in rows}
    conn = await asyncpg.connect(dsn)
    try:
        records = await conn.fetch("SELECT order_id, status FROM orders")
    except asyncpg.UndefinedTableError:  # the worker has not connected yet
        return {}
    finally:
        await conn.close()
    return {r["order_id"]: r["status"] for r in records}


def seconds_since(rfc3339: str) -> float:
    return time.time() - datetime.fromisoformat(rfc3339).timestamp()


async def test_lifecycle_reaches_the_store_exactly_once(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    with flashsale_service(data_dir, store_env) as service:
        admin = {"Authorization": f"Bearer {(data_dir / TOKEN_FILE).read_text().strip()}"}
        body = sale_body(stock=30, per_user_limit=1, hold_seconds=HOLD_SECONDS)
        sale_id = body["sale_id"]
        async with aiohttp.ClientSession(service.url) as http:
            assert (await http.post("/admin/sales", json=body, headers=admin)).status == 201

            async def buy(user: str) -> dict[str, Any] | None:
                async with http.post(
                    f"/v1/sales/{sale_id}/purchases", json={"user_id": user, "quantity": 1}
                ) as response:
                    return await response.json() if response.status == 201 else None

            async def settle(order_id: str, action: str) -> int:
                async with http.post(f"/v1/orders/{order_id}/{action}") as response:
                    return response.status

            first = [o for o in await asyncio.gather(*(buy(f"u{i}") for i in range(60))) if o]
            assert len(first) == 30
            paying, cancelling, walking = first[:10], first[10:20], first[20:]
            statuses = await asyncio.gather(
                *(settle(o["order_id"], "confirm") for o in paying),
                *(settle(o["order_id"], "cancel") for o in cancelling),
            )
            assert set(statuses) == {200}
            # The ten cancelled units are on sale again within a second (each process's
            # sold-out flag clears when the cancel is announced).
            second: list[dict[str, Any]] = []

            async def bought_again() -> bool:
                wave = await asyncio.gather(*(buy(f"v{len(second)}-{i}") for i in range(15)))
                second.extend(o for o in wave if o)
                return len(second) >= 10

            await eventually(bought_again, within=1.0, what="the cancelled units", interval=0)
            assert len(second) == 10
            assert {await settle(o["order_id"], "confirm") for o in second} == {200}

            async def released() -> bool:
                states = []
                for order in walking:
                    async with http.get(f"/v1/orders/{order['order_id']}") as response:
                        states.append((await response.json())["status"])
                return set(states) == {"expired"}

            await eventually(
                released, within=HOLD_SECONDS + 5, what="the abandoned holds to expire"
            )
            lateness = seconds_since(walking[-1]["expires_at"])
            assert lateness < 1.0 + RELEASE_SLACK_SECONDS, f"released {lateness:.2f}s late"
            sale = await (await http.get(f"/admin/sales/{sale_id}", headers=admin)).json()
            assert sale["stock_left"] == 10
            assert sale["counts"]["confirmed"] == 20

            expected = {o["order_id"]: "confirmed" for o in paying + second}
            expected |= {o["order_id"]: "cancelled" for o in cancelling}
            expected |= {o["order_id"]: "expired" for o in walking}

            async def all_stored() -> bool:
                return await stored_orders(store_env, data_dir) == expected

            await eventually(
                all_stored, within=10, what="the order store to hold every order's final state"
            )

        audit = run_audit(data_dir, store_env)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "audit clean" in audit.stdout
        assert "on their way" not in audit.stdout


async def test_audit_catches_a_damaged_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with flashsale_service(data_dir) as service:
        admin = {"Authorization": f"Bearer {(data_dir / TOKEN_FILE).read_text().strip()}"}
        body = sale_body(stock=5)
        async with aiohttp.ClientSession(service.url) as http:
            await http.post("/admin/sales", json=body, headers=admin)
            orders = []
            for user in ("a", "b", "c"):
                response = await http.post(
                    f"/v1/sales/{body['sale_id']}/purchases", json={"user_id": user, "quantity": 1}
                )
                orders.append((await response.json())["order_id"])

        async def stored() -> bool:
            return len(await stored_orders({}, data_dir)) == 3

        await eventually(stored, within=10, what="the worker to store the orders")
    clean = run_audit(data_dir, {})  # the service is gone: audit starts its Redis itself
    assert clean.returncode == 0, clean.stdout + clean.stderr

    with sqlite3.connect(data_dir / SQLITE_FILE) as db:
        db.execute("DELETE FROM orders WHERE order_id = ?", (orders[0],))
        db.execute("UPDATE orders SET status = 'confirmed' WHERE order_id = ?", (orders[1],))
        db.execute(
            "INSERT INTO orders SELECT 'ghost-order', sale_id, user_id, quantity, status, "
            "created_at_ms, expires_at_ms, updated_at_ms, last_event_id FROM orders LIMIT 1"
        )
    damaged = run_audit(data_dir, {})
    assert damaged.returncode == 1
    assert f"order {orders[0]} is not in the order store" in damaged.stdout
    assert f"order {orders[1]} is reserved x1 in Redis but confirmed x1" in damaged.stdout
    assert "stored order ghost-order has no 201" in damaged.stdout
    assert "audit FAILED: 3 violation(s)" in damaged.stdout
