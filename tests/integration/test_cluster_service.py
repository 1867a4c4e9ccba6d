"""The service and the worker on a real Redis Cluster (3 primaries, 3 replicas), given the
URL of one node as it is: the engine finds out it is a cluster by itself. Shoppers buy, pay,
cancel and let holds expire on sales spread over every primary; the sold-out flag clears
through the cluster's pub/sub; every order reaches the order store and the audit is clean."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.cluster import RedisCluster

from flashsale import keys
from flashsale.api.app import create_app
from flashsale.api.context import REDIS
from flashsale.metrics import Metrics
from flashsale.settings import Settings
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.client import connect, is_cluster
from flashsale.store.scripts import Scripts
from flashsale.store.shards import home_bucket
from flashsale.worker.audit import audit_sale
from flashsale.worker.worker import Worker
from tests.helpers import ADMIN, sale_body, unique_id
from tests.integration.conftest import Client
from tests.integration.test_order_queue import stored_states, worker_settings
from tests.polling import eventually

pytestmark = pytest.mark.cluster


@pytest.fixture
def on_cluster(settings: Settings, cluster_urls: list[str]) -> Settings:
    # A long sold-out flag: only the stock-back announcement (pub/sub) can clear it in time.
    return settings.replace(redis_url=cluster_urls[0], admission_sold_out_ttl_seconds=60.0)


@pytest.fixture
async def client(on_cluster: Settings) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(on_cluster))) as test_client:
        yield test_client


@pytest.fixture
async def worker(on_cluster: Settings, tmp_path: Path) -> AsyncIterator[tuple[Worker, OrderSink]]:
    redis = await connect(on_cluster)
    sink = open_sink(f"sqlite:{tmp_path / 'orders.sqlite3'}", tmp_path)
    yield Worker(redis, Scripts.register(redis), sink, worker_settings(on_cluster), Metrics()), sink
    await sink.close()
    await redis.aclose()


def sales_on_every_primary(cluster: RedisCluster) -> list[str]:
    """One fresh sale id owned by each primary."""
    by_owner: dict[str, str] = {}
    while len(by_owner) < 3:
        sale_id = unique_id()
        owner = cluster.get_node_from_key(keys.sale(sale_id))
        assert owner is not None
        by_owner.setdefault(owner.name, sale_id)
    return list(by_owner.values())


async def buy(client: Client, sale_id: str, user_id: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        f"/v1/sales/{sale_id}/purchases", json={"user_id": user_id, "quantity": 1}
    )
    return response.status, await response.json()


async def test_the_engine_finds_the_cluster_from_one_nodes_url(client: Client) -> None:
    assert is_cluster(client.app[REDIS])
    assert (await client.get("/readyz")).status == 200


async def test_shoppers_on_sales_over_every_primary_are_sold_each_unit_once(
    client: Client, worker: tuple[Worker, OrderSink]
) -> None:
    cluster = cast(RedisCluster, client.app[REDIS])
    sale_ids = sales_on_every_primary(cluster)
    for sale_id in sale_ids:
        body = sale_body(sale_id=sale_id, stock=5)
        assert (await client.post("/admin/sales", json=body, headers=ADMIN)).status == 201

    # 40 shoppers at once on each sale, 120 in all: exactly 5 holds per sale.
    attempts = [(s, f"shopper-{i}") for s in sale_ids for i in range(40)]
    answers = await asyncio.gather(*(buy(client, s, u) for s, u in attempts))
    holds: dict[str, list[str]] = {sale_id: [] for sale_id in sale_ids}
    for (sale_id, _user), (status, answer) in zip(attempts, answers, strict=True):
        assert status in (201, 409), answer
        if status == 201:
            holds[sale_id].append(answer["order_id"])
        else:
            assert answer["code"] == "sold_out"
    assert all(len(orders) == 5 for orders in holds.values()), holds

    listed = await (await client.get("/admin/sales", headers=ADMIN)).json()
    listed_ids = {sale["sale_id"] for sale in listed["sales"]}
    assert set(sale_ids) <= listed_ids

    for sale_id, (paid, cancelled, *_rest) in holds.items():
        assert (await client.post(f"/v1/orders/{paid}/confirm")).status == 200
        assert (await client.post(f"/v1/orders/{cancelled}/cancel")).status == 200
        view = await (await client.get(f"/v1/sales/{sale_id}")).json()
        assert view["stock_left"] == 1

        # The process flagged the sale sold out; the cancel's announcement clears the flag.
        async def bought_again(sale_id: str = sale_id) -> bool:
            status, _answer = await buy(client, sale_id, "late-shopper")
            return status == 201

        await eventually(bought_again, within=10, what="the returned unit to be sold again")

    queue, sink = worker
    await queue.burst()
    for sale_id, orders in holds.items():
        states = await stored_states(sink, sale_id)
        assert len(states) == 6  # five holds and the late shopper's
        assert states[orders[0]] == "confirmed"
        assert states[orders[1]] == "cancelled"
        report = await audit_sale(cast(Any, cluster), sink, sale_id)
        assert report.violations == [], report.violations


async def test_a_hold_nobody_pays_expires_on_the_cluster(
    client: Client, worker: tuple[Worker, OrderSink]
) -> None:
    body = sale_body(stock=1, hold_seconds=1)
    assert (await client.post("/admin/sales", json=body, headers=ADMIN)).status == 201
    status, hold = await buy(client, body["sale_id"], "forgetful")
    assert status == 201
    queue, sink = worker

    async def expired() -> bool:
        await queue.burst()
        return (await stored_states(sink, body["sale_id"])).get(hold["order_id"]) == "expired"

    await eventually(expired, within=10, what="the unpaid hold to expire and be stored")
    view = await (await client.get(f"/v1/sales/{body['sale_id']}")).json()
    assert view["stock_left"] == 1


async def test_a_sale_of_three_shards_has_a_bucket_on_each_primary(client: Client) -> None:
    cluster = cast(RedisCluster, client.app[REDIS])
    body = sale_body(stock=9, shards=3)
    assert (await client.post("/admin/sales", json=body, headers=ADMIN)).status == 201
    named = await cluster.hget(keys.sale(body["sale_id"]), "buckets")
    bucket_ids = str(named).split(",")
    owners = {cluster.get_node_from_key(keys.sale(b)).name for b in bucket_ids}  # type: ignore[union-attr]
    assert len(owners) == 3
    users = [f"s{i}" for i in range(30)]
    answers = await asyncio.gather(*(buy(client, body["sale_id"], u) for u in users))
    # Each bucket (3 units) sells to the shoppers whose home it is, at once.
    homes = Counter(home_bucket(bucket_ids, u) for u in users)
    assert sum(status == 201 for status, _ in answers) == sum(min(3, n) for n in homes.values())
    view = await (await client.get(f"/v1/sales/{body['sale_id']}")).json()
    assert view["stock_left"] == 9 - sum(status == 201 for status, _ in answers)
