"""`redis.wait_replicas` on a single Redis with a replica: a 201 is sent only once the replica
has the hold; with the replica gone, the purchase is answered 202 pending (it is on the
primary, not replicated) and settles as the hold it is. Without the setting, the same
purchase is a 201: the setting is what changes the answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis import Redis as BlockingRedis

from flashsale import keys
from flashsale.api.app import create_app
from flashsale.runtime.redis_server import RedisServer
from flashsale.settings import Settings
from tests.helpers import ADMIN, sale_body
from tests.polling import eventually, eventually_blocking
from tests.servers import redis_process


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = redis_process(tmp_path / "primary")
    with primary:
        replica = redis_process(tmp_path / "replica", "--replicaof", "127.0.0.1",
                                str(primary.port))  # fmt: skip
        with replica:
            link = BlockingRedis(port=replica.port, decode_responses=True)
            eventually_blocking(
                lambda: link.info("replication").get("master_link_status") == "up",
                within=30, what="the replica to sync",
            )  # fmt: skip
            link.close()
            yield primary, replica


async def buy(client: TestClient[Any, Any], sale_id: str, user_id: str) -> tuple[int, Any]:
    response = await client.post(
        f"/v1/sales/{sale_id}/purchases", json={"user_id": user_id, "quantity": 1}
    )
    return response.status, await response.json()


@pytest.mark.parametrize("wait_replicas", [0, 1])
async def test_a_purchase_the_replica_did_not_take_is_pending_not_a_201(
    settings: Settings, primary_and_replica: tuple[RedisServer, RedisServer], wait_replicas: int
) -> None:
    primary, replica = primary_and_replica
    own = settings.replace(
        redis_url=primary.url, redis_wait_replicas=wait_replicas, redis_wait_timeout_ms=200
    )
    async with TestClient(TestServer(create_app(own))) as client:
        body = sale_body(stock=5)
        assert (await client.post("/admin/sales", json=body, headers=ADMIN)).status == 201
        status, first = await buy(client, body["sale_id"], "ann")
        assert status == 201
        if wait_replicas:  # the replica had it before the answer was sent
            with BlockingRedis(port=replica.port, decode_responses=True) as on_replica:
                assert on_replica.exists(keys.order(body["sale_id"], first["order_id"]))

        replica.kill()
        status, second = await buy(client, body["sale_id"], "ben")
        if not wait_replicas:
            assert status == 201, second
            return
        assert status == 202, second
        assert second["status"] == "pending"

        async def settled() -> Any:
            response = await client.get(f"/v1/orders/{second['order_id']}")
            answer = await response.json()
            return answer if answer["status"] != "pending" else None

        order = await eventually(settled, within=10, what="the pending purchase to settle")
        assert order["status"] == "reserved"  # it was on the primary all along
        view = await (await client.get(f"/v1/sales/{body['sale_id']}")).json()
        assert view["stock_left"] == 3
