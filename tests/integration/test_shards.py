"""A hot sale over several shards: its stock split into buckets on their own slots, each user
served by one home bucket, and a rebalancer that moves stock to a bucket that ran out while
its shoppers still ask - so the sale sells every unit, never one twice."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from flashsale import keys
from flashsale.metrics import Metrics
from flashsale.settings import Settings
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.scripts import Scripts
from flashsale.store.shards import bucket_ids_of, home_bucket
from flashsale.worker.audit import audit_sale
from flashsale.worker.worker import Worker
from tests.helpers import ADMIN, sale_body
from tests.integration.conftest import Client, CreateSale
from tests.integration.test_order_queue import stored_states, worker_settings
from tests.polling import eventually


@pytest.fixture
async def worker_and_sink(
    redis: Redis, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Worker, OrderSink]]:
    sink = open_sink(f"sqlite:{tmp_path / 'orders.sqlite3'}", tmp_path)
    quick = worker_settings(settings, worker_rebalance_interval_seconds=0.05)
    yield Worker(redis, Scripts.register(redis), sink, quick, Metrics()), sink
    await sink.close()


async def buckets(redis: Redis, sale_id: str) -> list[str]:
    named = await redis.hget(keys.sale(sale_id), "buckets")
    return bucket_ids_of(sale_id, {"buckets": str(named or "")})


def users_of(bucket_ids: list[str], bucket: str, count: int = 4000) -> list[str]:
    """`count` user ids whose home is `bucket`."""
    found: list[str] = []
    for i in itertools.count():
        user = f"shopper-{i}"
        if home_bucket(bucket_ids, user) == bucket:
            found.append(user)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


async def buy(client: Client, sale_id: str, user_id: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        f"/v1/sales/{sale_id}/purchases", json={"user_id": user_id, "quantity": 1}
    )
    return response.status, await response.json()


async def test_a_sale_of_three_shards_splits_its_stock_and_shows_it_whole(
    create_sale: CreateSale, client: Client, redis: Redis
) -> None:
    created = await create_sale(stock=10, shards=3)
    assert (created["stock_total"], created["stock_left"]) == (10, 10)
    sale_id = created["sale_id"]
    bucket_ids = await buckets(redis, sale_id)
    shares = [int(await redis.hget(keys.sale(b), "stock_left") or -1) for b in bucket_ids]
    assert sorted(shares) == [3, 3, 4]
    status, hold = await buy(client, sale_id, "ann")
    assert status == 201
    assert hold["sale_id"] == sale_id  # not its bucket's
    view = await (await client.get(f"/v1/sales/{sale_id}")).json()
    assert (view["stock_total"], view["stock_left"]) == (10, 9)
    admin = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    assert admin["counts"]["reserved"] == 1
    order = await (await client.get(f"/v1/orders/{hold['order_id']}")).json()
    assert (order["sale_id"], order["status"]) == (sale_id, "reserved")
    listed = await (await client.get("/admin/sales", headers=ADMIN)).json()
    ids = {sale["sale_id"] for sale in listed["sales"]}
    assert sale_id in ids
    assert not any(keys.BUCKET_SEPARATOR in i for i in ids)  # buckets are not sales to list


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"shards": 0}, "shards"),
        ({"shards": 65}, "shards"),
        ({"shards": 3, "stock": 2}, "shards"),
        ({"shards": 2, "holds_per_address": 1}, "shards"),
        ({"shards": 2, "waiting_room": {"enabled": True}}, "shards"),
    ],
)
async def test_shards_that_cannot_be_are_refused_and_nothing_is_made(
    client: Client, redis: Redis, extra: dict[str, Any], names: str
) -> None:
    body = sale_body(**extra)
    response = await client.post("/admin/sales", json=body, headers=ADMIN)
    assert response.status == 400
    problem = await response.json()
    assert problem["code"] == "invalid_request"
    assert names in problem["detail"]
    assert not await redis.exists(keys.sale(body["sale_id"]))


async def test_one_buckets_shoppers_buy_every_unit_of_the_sale(
    create_sale: CreateSale,
    client: Client,
    redis: Redis,
    worker_and_sink: tuple[Worker, OrderSink],
) -> None:
    worker, sink = worker_and_sink
    created = await create_sale(stock=10, shards=2)
    sale_id = created["sale_id"]
    bucket_ids = await buckets(redis, sale_id)
    hot = users_of(bucket_ids, bucket_ids[0])  # every shopper's home is the first bucket
    stop = asyncio.Event()
    background = asyncio.create_task(worker.run(stop))
    holders: list[str] = []
    shoppers = iter(hot)

    async def wave() -> bool:
        """Twenty of the hot bucket's shoppers at once; done when the sale has no unit left."""
        answers = await asyncio.gather(*(buy(client, sale_id, next(shoppers)) for _ in range(20)))
        for status, answer in answers:
            assert status in (201, 409), answer
            if status == 201:
                holders.append(answer["user_id"])
            else:
                assert answer["code"] == "sold_out"
        view = await (await client.get(f"/v1/sales/{sale_id}")).json()
        return bool(view["stock_left"] == 0)

    try:
        await eventually(wave, within=30, interval=0.2, what="the whole stock to be sold")
    finally:
        stop.set()
        await background
    assert len(holders) == 10  # the other bucket's units came over: nothing unsold
    assert len(set(holders)) == 10
    assert all(home_bucket(bucket_ids, u) == bucket_ids[0] for u in holders)
    await worker.burst()
    report = await audit_sale(redis, sink, sale_id)
    assert report.violations == [], report.violations
    assert (report.stock_total, report.stock_left, report.units["reserved"]) == (10, 0, 10)
    assert len(await stored_states(sink, sale_id)) == 10  # filed under the sale, not a bucket


async def test_an_operators_changes_reach_every_bucket(
    create_sale: CreateSale, client: Client, redis: Redis
) -> None:
    created = await create_sale(stock=4, shards=2)
    sale_id = created["sale_id"]
    bucket_ids = await buckets(redis, sale_id)
    patched = await client.patch(
        f"/admin/sales/{sale_id}", json={"add_stock": 5, "paused": True}, headers=ADMIN
    )
    assert patched.status == 200
    view = await patched.json()
    assert (view["stock_total"], view["stock_left"], view["status"]) == (9, 9, "paused")
    shares = [int(await redis.hget(keys.sale(b), "stock_total") or -1) for b in bucket_ids]
    assert sorted(shares) == [4, 5]
    for user in ("ann", "bob", "cy", "dee"):  # whatever their bucket
        status, answer = await buy(client, sale_id, user)
        assert (status, answer["code"]) == (409, "sale_paused")
    refused = await client.patch(
        f"/admin/sales/{sale_id}", json={"holds_per_address": 2}, headers=ADMIN
    )
    assert refused.status == 400
    assert (await client.post(f"/admin/sales/{sale_id}/end", headers=ADMIN)).status == 200
    for user in ("ann", "bob", "cy", "dee"):
        status, answer = await buy(client, sale_id, user)
        assert (status, answer["code"]) == (409, "sale_ended")


async def test_units_taken_but_not_yet_given_are_delivered_by_the_next_pass(
    create_sale: CreateSale,
    redis: Redis,
    worker_and_sink: tuple[Worker, OrderSink],
) -> None:
    worker, sink = worker_and_sink
    created = await create_sale(stock=6, shards=2)
    sale_id = created["sale_id"]
    donor, receiver = await buckets(redis, sale_id)
    scripts = Scripts.register(redis)
    # A rebalancer took 2 units and died before giving them: they are in no bucket's stock.
    assert await scripts.take_stock(donor, "t-crash", receiver, 2) == 2
    assert await scripts.take_stock(donor, "t-crash", receiver, 2) == 2  # the same take, again
    lent = await audit_sale(redis, sink, sale_id)
    assert lent.violations == [], lent.violations  # counted as lent, the sums hold
    assert lent.stock_left == 4  # in the buckets' stock now: 1 and 3
    await worker.rebalancer.pass_once()
    left = [int(await redis.hget(keys.sale(b), "stock_left") or -1) for b in (donor, receiver)]
    assert left == [1, 5]
    assert not await redis.hlen(keys.transfers(donor))  # nothing owed any more
    await worker.rebalancer.pass_once()  # delivered once
    assert int(await redis.hget(keys.sale(receiver), "stock_left") or -1) == 5
    assert (await audit_sale(redis, sink, sale_id)).violations == []
    # A bucket with nothing to give gives nothing.
    assert await scripts.take_stock(donor, "t-more", receiver, 5) == 1
    assert await scripts.take_stock(donor, "t-none", receiver, 5) == 0
