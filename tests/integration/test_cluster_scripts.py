"""The engine's Lua scripts on a real Redis Cluster (3 primaries, 3 replicas, formed by
`redis-cli --cluster create` on free loopback ports): every key a sale's scripts touch
shares one slot, and every script runs there, through redis-py's cluster client - the first
piece of issue 12 (tests/integration/test_cluster_service.py runs the service there)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from flashsale import keys
from flashsale.records import NewSale, OrderRecord, OrderStatus, SaleChange, WaitingRoom
from flashsale.resources import lua_dir
from flashsale.store.outcomes import Attempt, Rejected, Rejection, Reservation, Settled
from flashsale.store.scripts import Joined, Scripts
from tests.polling import eventually

pytestmark = pytest.mark.cluster

FAR = 4_102_444_800_000  # 2100-01-01, in ms


@pytest.fixture
async def cluster(cluster_urls: list[str]) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(cluster_urls[0], decode_responses=True)
    _ = await client.initialize()  # learns the slots' owners
    yield client
    await client.aclose()


def per_sale_keys(sale_id: str) -> list[str]:
    """Every key name keys.py gives a sale's scripts."""
    order, user = "o-1", "u-1"
    return [
        keys.sale(sale_id), keys.held(sale_id), keys.order(sale_id, order),
        keys.orders(sale_id), keys.holds(sale_id), keys.events(sale_id),
        keys.dead_letters(sale_id), keys.counted(sale_id, "b-1"), keys.fence(sale_id, order),
        keys.patch_applied(sale_id, "c-1"), keys.idempotency(sale_id, user, "k-1"),
        keys.prequeue(sale_id), keys.queue(sale_id), keys.queue_admitted(sale_id),
        keys.queue_expired(sale_id), keys.queue_seen(sale_id), keys.queue_unspent(sale_id),
    ]  # fmt: skip


async def test_the_cluster_has_three_primaries_each_with_a_replica(
    cluster: RedisCluster,
) -> None:
    nodes = await cluster.cluster_nodes()
    roles = [("master" if "master" in str(info["flags"]) else "replica") for info in nodes.values()]
    assert sorted(roles) == ["master"] * 3 + ["replica"] * 3


async def test_a_sales_keys_share_one_slot_and_sales_spread_over_the_primaries(
    cluster: RedisCluster,
) -> None:
    owners = set()
    for i in range(30):
        sale_id = f"sale-{i}"
        slots = {await cluster.cluster_keyslot(key) for key in per_sale_keys(sale_id)}
        assert len(slots) == 1, (sale_id, slots)
        owner = cluster.get_node_from_key(keys.sale(sale_id))
        assert owner is not None
        owners.add(owner.name)
    assert len(owners) == 3  # thirty sales land on every primary


async def test_every_script_runs_on_the_cluster(cluster: RedisCluster) -> None:
    # redis-py's cluster client takes the same calls; it routes each script by its keys' slot.
    scripts = Scripts.register(cast(Redis, cluster))
    ran: set[str] = set()
    original = scripts._call

    async def recording(script, script_keys, args):  # type: ignore[no-untyped-def]
        ran.add(script.name)
        return await original(script, script_keys, args)

    scripts._call = recording  # type: ignore[method-assign]
    sale_id = f"cluster-{secrets.token_hex(4)}"
    assert await scripts.probe() > 0
    new = NewSale("SKU", "cluster sale", 5, 0, FAR, 2, 1, waiting_room=WaitingRoom())
    assert await scripts.create_sale(sale_id, "ref", new, "creation-1") is None
    now, fields = await scripts.read_sale(sale_id)
    assert fields["name"] == "cluster sale"
    assert abs(now - await scripts.probe()) < 5_000
    assert (await scripts.read_sale("no-such-sale"))[1] == {}
    first = await scripts.purchase(sale_id, Attempt(f"{sale_id}-1", "u1", 1), 60_000, 0)
    assert isinstance(first, Reservation)
    batch = await scripts.purchase_batch(
        sale_id, [Attempt(f"{sale_id}-2", "u2", 1), Attempt(f"{sale_id}-3", "u3", 1)], 60_000, 0
    )
    assert all(isinstance(outcome, Reservation) for outcome in batch)
    lost = OrderRecord(f"{sale_id}-4", sale_id, "u4", 1, OrderStatus.CONFIRMED, 0, FAR)
    assert await scripts.restore_order(sale_id, lost) == ("restored", "confirmed")
    assert await scripts.confirm(sale_id, f"{sale_id}-1") == Settled("confirmed", False)
    assert await scripts.cancel(sale_id, f"{sale_id}-2") == Settled("cancelled", False)

    async def expired() -> bool:  # the third hold lasts 1 s
        return await scripts.expire_holds(sale_id, [f"{sale_id}-3"]) == 1

    await eventually(expired, within=10, what="the one-second hold to expire")
    assert await scripts.settle_attempt(sale_id, f"{sale_id}-never") is None
    assert await scripts.patch_sale(sale_id, SaleChange(add_stock=1), "change-1", "fp") is None
    assert await scripts.add_counts(sale_id, "batch-1", 3, 1, 1) is True
    # The order store's group reads an event (pending now); it is dead-lettered and replayed.
    read: Any = await cluster.xreadgroup(
        keys.ORDER_STORE_GROUP, "cluster-test", {keys.events(sale_id): ">"}, count=1
    )
    [[_stream, [(entry_id, fields)]]] = read
    assert await scripts.dead_letter(sale_id, str(entry_id), dict(fields), "test", 1) is True
    dead: Any = await cluster.xrange(keys.dead_letters(sale_id))
    [(dead_id, _dead)] = dead
    assert await scripts.replay_dead_letter(sale_id, str(dead_id)) is not None
    await scripts.trim_events(sale_id)
    # Stock moves between two sales' slots (a sharded sale's buckets) in two steps.
    other = f"cluster-{secrets.token_hex(4)}"
    assert await scripts.create_sale(other, "ref3", new, "creation-3") is None
    assert await scripts.take_stock(sale_id, "t-1", other, 2) == 2
    assert await scripts.give_stock(other, "t-1", 2) == 2
    assert await scripts.give_stock(other, "t-1", 2) == 0  # once
    assert await scripts.end_sale(sale_id) is None
    await scripts.retire_sale(sale_id)

    room_sale = f"room-{secrets.token_hex(4)}"
    room = WaitingRoom(enabled=True, admit_per_second=1000)
    room_new = NewSale("SKU", "room sale", 5, 0, FAR, 1, 600, waiting_room=room)
    assert await scripts.create_sale(room_sale, "ref2", room_new, "creation-2") is None
    assert isinstance(await scripts.queue_join(room_sale, "w1", 0.5), Joined)
    await scripts.queue_seen(room_sale, ["w1"])

    async def admitted() -> bool:
        await scripts.queue_tick(room_sale, 60_000, 50, 100)
        return bool(await cluster.hexists(keys.queue_admitted(room_sale), "w1"))

    await eventually(admitted, within=10, what="the waiter to be admitted")
    assert (await scripts.queue_state(room_sale, ["wr_enabled"]))[1] == "1"
    refused = await scripts.purchase(room_sale, Attempt(f"{room_sale}-1", "w1", 1), 60_000, 0)
    assert refused == Rejected(Rejection.QUEUE_REQUIRED)

    every_script = {p.stem for p in lua_dir().glob("*.lua") if not p.stem.startswith("_")}
    assert every_script <= ran, every_script - ran
