"""PostgreSQL stopped mid-sale: purchases go on, the backlog waits, then drains; nothing lost."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flashsale.runtime.admin_token import TOKEN_FILE
from tests.e2e.test_lifecycle import run_audit, stored_orders
from tests.helpers import sale_body
from tests.polling import eventually
from tests.servers import PostgresServer, postgres_server
from tests.service import flashsale_service

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """Not the session's server: this test stops and starts it."""
    with postgres_server() as server:
        yield server


def sample(metrics_text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics_text, flags=re.M)
    return float(match.group(1)) if match else 0.0


async def test_orders_wait_for_postgres_and_all_arrive(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    env = {
        "FLASHSALE_ORDERS_DSN": own_postgres.dsn,
        "FLASHSALE_WORKER_BACKOFF_MAX_SECONDS": "0.5",
    }
    data_dir = tmp_path / "data"
    with flashsale_service(data_dir, env) as service:
        admin = {"Authorization": f"Bearer {(data_dir / TOKEN_FILE).read_text().strip()}"}
        body = sale_body(stock=100, per_user_limit=1)
        async with aiohttp.ClientSession(service.url) as http:
            await http.post("/admin/sales", json=body, headers=admin)

            async def buy(user: str) -> Any:
                async with http.post(
                    f"/v1/sales/{body['sale_id']}/purchases",
                    json={"user_id": user, "quantity": 1},
                ) as response:
                    assert response.status == 201, await response.text()
                    return (await response.json())["order_id"]

            async def metric(name: str) -> float:
                async with http.get("/metrics") as response:
                    return sample(await response.text(), name)

            before = [await buy(f"before-{i}") for i in range(10)]

            async def first_ten_stored() -> bool:
                return len(await stored_orders(env, data_dir)) == 10

            await eventually(
                first_ten_stored, within=15, what="the first orders to reach PostgreSQL"
            )

            own_postgres.stop()
            during = list(await asyncio.gather(*(buy(f"during-{i}") for i in range(20))))

            async def worker_noticed() -> bool:
                unavailable = 'flashsale_order_store_failures_total{kind="unavailable"}'
                return await metric(unavailable) >= 3

            await eventually(worker_noticed, within=15, what="the worker to find PostgreSQL gone")
            failures_then = await metric('flashsale_order_store_failures_total{kind="unavailable"}')
            await asyncio.sleep(1.5)  # an outage of a while, not a wait for an event
            failures_now = await metric('flashsale_order_store_failures_total{kind="unavailable"}')
            # Backing off to 0.5 s between tries: a handful of tries, not a hot loop.
            assert failures_now - failures_then <= 6

            own_postgres.start()

            async def all_stored() -> bool:
                stored = await stored_orders(env, data_dir)
                return set(stored) == set(before + during)

            await eventually(all_stored, within=20, what="the backlog to drain into PostgreSQL")

    audit = run_audit(data_dir, env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "on their way" not in audit.stdout
