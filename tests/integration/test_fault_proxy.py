"""Replies lost after Redis ran the command, through a fault-injection proxy: the client sends
the command again, and every state change still happens exactly once."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from flashsale import keys
from flashsale.api.app import create_app
from flashsale.metrics import Metrics
from flashsale.records import SaleChange
from flashsale.resources import lua_dir
from flashsale.settings import Settings
from flashsale.sinks import open_sink
from flashsale.store.batcher import PurchaseBatcher
from flashsale.store.client import connect_single
from flashsale.store.lua import script_source
from flashsale.store.outcomes import Rejected, Reservation, Settled
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from flashsale.worker.worker import Worker
from tests.faultproxy import Command, FaultProxy
from tests.helpers import unique_id
from tests.integration.test_active_sales import window
from tests.integration.test_order_queue import stored_states, worker_settings
from tests.polling import eventually


def evalsha_of(script: str) -> Callable[[Command], bool]:
    sha = hashlib.sha1(script_source(script).encode(), usedforsecurity=False).hexdigest()

    def matches(command: Command) -> bool:
        return command[0].upper() == b"EVALSHA" and command[1].decode() == sha

    return matches


@dataclass
class Through:
    proxy: FaultProxy
    store: SaleStore
    scripts: Scripts
    direct: Redis  # to Redis itself, to look at the truth
    settings: Settings


@pytest.fixture
async def through(settings: Settings, private_redis: str) -> AsyncIterator[Through]:
    target = urlsplit(private_redis)
    proxy = FaultProxy(str(target.hostname), int(target.port or 6379))
    await proxy.start()
    own = settings.replace(redis_url=proxy.url)
    redis = connect_single(own)
    scripts = Scripts.register(redis)
    store = SaleStore(redis, scripts, 3600)
    batcher = None
    if own.batching.enabled:
        batcher = PurchaseBatcher.from_settings(store.purchase_batch, own)
        store.use_batcher(batcher)
    direct = Redis.from_url(private_redis, decode_responses=True)
    # Loaded beforehand: the first EVALSHA of a script would otherwise be a NOSCRIPT refusal,
    # and swallowing that reply loses nothing.
    for script in lua_dir().glob("[!_]*.lua"):
        await direct.script_load(script_source(script.stem))
    yield Through(proxy, store, scripts, direct, own)
    if batcher is not None:
        await batcher.close()
    await direct.aclose()
    await redis.aclose()
    await proxy.stop()


async def new_sale(t: Through, stock: int = 10) -> str:
    sale_id = unique_id()
    created = await t.store.create_sale(sale_id, window(-60, 3600))
    assert not isinstance(created, Rejected)
    if stock != created.stock_total:
        await t.store.patch_sale(sale_id, SaleChange(add_stock=stock - created.stock_total))
    return sale_id


async def test_a_purchase_whose_reply_is_lost_takes_stock_once(through: Through) -> None:
    t = through
    sale_id = await new_sale(t, stock=10)
    script = "purchase_batch" if t.settings.batching.enabled else "purchase"
    swallowed = t.proxy.swallow_reply(evalsha_of(script))
    outcome = await t.store.purchase(sale_id, "u1", 1)
    assert len(swallowed) == 1, "the fault was not injected"
    assert isinstance(outcome, Reservation)
    # The client's second send met the first one's result: one order, one unit - and no
    # "replayed" (the shopper sent one request).
    assert not outcome.replayed
    assert await t.direct.hget(keys.sale(sale_id), "stock_left") == "9"
    assert await t.direct.smembers(keys.orders(sale_id)) == {outcome.order_id}
    assert await t.direct.xlen(keys.events(sale_id)) == 1


@pytest.mark.parametrize(("action", "status"), [("confirm", "confirmed"), ("cancel", "cancelled")])
async def test_a_finish_whose_reply_is_lost_happens_once(
    through: Through, action: str, status: str
) -> None:
    t = through
    sale_id = await new_sale(t, stock=10)
    held = await t.store.purchase(sale_id, "u1", 1)
    assert isinstance(held, Reservation)
    swallowed = t.proxy.swallow_reply(evalsha_of(action))
    settled = await (t.store.confirm if action == "confirm" else t.store.cancel)(held.order_id)
    assert len(swallowed) == 1
    assert settled == Settled(status, replayed=True)
    sale = await t.direct.hgetall(keys.sale(sale_id))
    assert sale is not None
    assert sale[f"u_{status}"] == "1"
    assert sale["stock_left"] == ("9" if action == "confirm" else "10")
    events = [f["status"] for _i, f in await t.direct.xrange(keys.events(sale_id)) or [] if f]
    assert events == ["reserved", status]


async def test_creating_and_restocking_whose_replies_are_lost_happen_once(
    through: Through,
) -> None:
    t = through
    swallowed = t.proxy.swallow_reply(evalsha_of("create_sale"))
    sale_id = unique_id()
    created = await t.store.create_sale(sale_id, window(-60, 3600))
    assert len(swallowed) == 1
    assert not isinstance(created, Rejected), "a lost reply turned our creation into 409"

    swallowed = t.proxy.swallow_reply(evalsha_of("patch_sale"))
    patched = await t.store.patch_sale(sale_id, SaleChange(add_stock=5))
    assert len(swallowed) == 1
    assert not isinstance(patched, Rejected)
    assert (patched.stock_total, patched.stock_left) == (created.stock_total + 5,) * 2


async def test_counts_whose_reply_is_lost_are_added_once(through: Through) -> None:
    t = through
    sale_id = await new_sale(t)
    swallowed = t.proxy.swallow_reply(evalsha_of("add_counts"))
    assert await t.scripts.add_counts(sale_id, "batch-x", 4, 3, 1)
    assert len(swallowed) == 1
    sale = await t.direct.hgetall(keys.sale(sale_id))
    assert (sale["attempts"], sale["rejected"], sale["shed"]) == ("4", "3", "1")


async def test_an_acknowledgement_whose_reply_is_lost_loses_and_doubles_nothing(
    through: Through, tmp_path: Path
) -> None:
    t = through
    sale_id = await new_sale(t, stock=10)
    orders = []
    for i in range(4):
        held = await t.store.purchase(sale_id, f"u{i}", 1)
        assert isinstance(held, Reservation)
        orders.append(held.order_id)
    sink = open_sink(f"sqlite:{tmp_path / 'orders.sqlite3'}", tmp_path)
    worker_redis = connect_single(t.settings)  # through the proxy, with the engine's retry
    worker = Worker(
        worker_redis, Scripts.register(worker_redis), sink,
        worker_settings(t.settings, worker_claim_idle_seconds=0.05), Metrics(),
    )  # fmt: skip
    swallowed = t.proxy.swallow_reply(lambda command: command[0].upper() == b"XACK")
    for _ in range(3):  # the lost XACK fails a pass; a later pass takes the entries over
        try:
            await worker.burst()
        except Exception:  # noqa: S112 - the pass that lost its reply; the next one retries
            continue
    assert len(swallowed) == 1
    assert await stored_states(sink, sale_id) == dict.fromkeys(orders, "reserved")
    pending = await t.direct.xpending(keys.events(sale_id), keys.ORDER_STORE_GROUP)
    assert pending["pending"] == 0
    await sink.close()
    await worker_redis.aclose()


async def test_a_dead_letter_whose_reply_is_lost_is_written_once(
    through: Through, tmp_path: Path
) -> None:
    t = through
    sale_id = await new_sale(t, stock=10)
    await t.direct.xadd(keys.events(sale_id), {"type": "reserved", "order_id": "garbled"})
    sink = open_sink(f"sqlite:{tmp_path / 'orders.sqlite3'}", tmp_path)
    worker_redis = connect_single(t.settings)
    worker = Worker(
        worker_redis, Scripts.register(worker_redis), sink, worker_settings(t.settings), Metrics()
    )
    swallowed = t.proxy.swallow_reply(evalsha_of("dead_letter"))
    await worker.burst()
    assert len(swallowed) == 1
    letters = await t.direct.xrange(keys.dead_letters(sale_id)) or []
    assert [f["event.order_id"] for _i, f in letters if f] == ["garbled"]
    pending = await t.direct.xpending(keys.events(sale_id), keys.ORDER_STORE_GROUP)
    assert pending["pending"] == 0
    await sink.close()
    await worker_redis.aclose()


async def test_a_stalled_reply_is_202_then_settles_as_the_hold_it_was(
    through: Through,
) -> None:
    """Replies are held back past the shopper's deadline while the purchase is on its way:
    the answer is 202 pending (never 503), and once replies flow it settles as what Redis
    holds."""
    t = through
    app = create_app(t.settings.replace(admission_deadline_seconds=0.3))
    async with TestClient(TestServer(app)) as client:
        sale_id = await new_sale(t, stock=10)
        t.proxy.stall()
        try:
            response = await client.post(
                f"/v1/sales/{sale_id}/purchases", json={"user_id": "u1", "quantity": 2}
            )
            assert response.status == 202
            order_id = (await response.json())["order_id"]
        finally:
            t.proxy.release()

        async def settled() -> str | None:
            answer = await client.get(f"/v1/orders/{order_id}")
            if answer.status == 404:
                return "not_found"
            status = str((await answer.json())["status"])
            return None if status == "pending" else status

        # Held (the purchase ran), or fenced (the call was cut before it left: nothing taken).
        outcome = await eventually(settled, within=10, what="the 202 to settle")
        held = await t.direct.smembers(keys.orders(sale_id))
        stock_left = await t.direct.hget(keys.sale(sale_id), "stock_left")
        if outcome == "reserved":
            assert (held, stock_left) == ({order_id}, "8")
        else:
            assert (outcome, held, stock_left) == ("not_found", set(), "10")


async def test_connections_cut_between_calls_are_made_again(through: Through) -> None:
    t = through
    sale_id = await new_sale(t, stock=10)
    assert isinstance(await t.store.purchase(sale_id, "u1", 1), Reservation)
    t.proxy.reset()
    again = await t.store.purchase(sale_id, "u2", 1)
    assert isinstance(again, Reservation)
    assert not again.replayed
    assert await t.direct.hget(keys.sale(sale_id), "stock_left") == "8"


async def test_a_lost_reply_whose_retry_cannot_connect_is_202_not_503(
    through: Through,
) -> None:
    """Redis runs the purchase, its reply is lost, and the client's retry finds nothing to
    connect to: the last error says "could not connect", but the first try may have taken
    stock, so the answer is 202 pending - and it settles as the hold Redis has."""
    t = through
    app = create_app(t.settings)
    async with TestClient(TestServer(app)) as client:
        sale_id = await new_sale(t, stock=10)
        script = "purchase_batch" if t.settings.batching.enabled else "purchase"
        swallowed = t.proxy.swallow_reply(evalsha_of(script), then=t.proxy.refuse_connections)
        response = await client.post(
            f"/v1/sales/{sale_id}/purchases", json={"user_id": "u1", "quantity": 2}
        )
        assert len(swallowed) == 1, "the fault was not injected"
        body = await response.json()
        assert response.status == 202, body  # before: 503, with the units held
        assert body["status"] == "pending"
        await t.proxy.accept_connections()

        async def settled() -> str | None:
            answer = await client.get(f"/v1/orders/{body['order_id']}")
            status = str((await answer.json())["status"]) if answer.status == 200 else None
            return None if status in (None, "pending") else status

        assert await eventually(settled, within=15, what="the 202 to settle") == "reserved"
        assert await t.direct.hget(keys.sale(sale_id), "stock_left") == "8"
