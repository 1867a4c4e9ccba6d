"""holds_per_address: the unpaid units one client address may hold in a sale, capped in the
purchase script, atomically with the stock (API.md, issue 11)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from flashsale import keys
from flashsale.api.app import create_app
from flashsale.records import SaleChange, SaleRecord
from flashsale.settings import Settings
from flashsale.sinks import OrderSink
from flashsale.store.outcomes import Rejected, Rejection, Reservation
from flashsale.store.sales import SaleStore
from flashsale.worker.audit import audit_sale
from tests.helpers import ADMIN, sale_body
from tests.integration.test_order_queue import make_worker
from tests.integration.test_purchase_script import new_sale
from tests.polling import eventually

Client = TestClient[Any, Any]
HOME = {"X-Forwarded-For": "203.0.113.7"}  # one household (or one bot farm's address)
ELSEWHERE = {"X-Forwarded-For": "198.51.100.20"}


@pytest.fixture
async def proxied_client(settings: Settings) -> AsyncIterator[Client]:
    """The app behind a trusted proxy (127.0.0.1), which names each shopper's address."""
    behind_proxy = settings.replace(admission_trusted_proxies="127.0.0.1/32")
    async with TestClient(TestServer(create_app(behind_proxy))) as client:
        yield client


async def create(client: Client, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/admin/sales", json=sale_body(**overrides), headers=ADMIN)
    assert response.status == 201, await response.text()
    sale: dict[str, Any] = await response.json()
    return sale


async def buy(client: Client, sale_id: str, user: str, where: dict[str, str]) -> Any:
    return await client.post(
        f"/v1/sales/{sale_id}/purchases", json={"user_id": user, "quantity": 1}, headers=where
    )


async def admin_view(client: Client, sale_id: str) -> dict[str, Any]:
    view: dict[str, Any] = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    return view


async def test_an_address_at_its_cap_is_refused_and_nothing_is_taken(
    proxied_client: Client,
) -> None:
    client = proxied_client
    sale = await create(client, stock=10, holds_per_address=2)
    assert sale["holds_per_address"] == 2
    sale_id = sale["sale_id"]
    assert (await buy(client, sale_id, "mum", HOME)).status == 201
    assert (await buy(client, sale_id, "dad", HOME)).status == 201
    refused = await buy(client, sale_id, "kid", HOME)
    assert refused.status == 409
    problem = await refused.json(content_type=None)
    assert refused.content_type == "application/problem+json"
    assert problem["code"] == "hold_limit_reached"
    assert problem["status"] == 409
    assert "address" in problem["detail"]
    view = await admin_view(client, sale_id)
    assert view["stock_left"] == 8  # the refusal took nothing
    assert view["counts"]["reserved"] == 2
    # Another address is not held back by this one.
    assert (await buy(client, sale_id, "neighbour", ELSEWHERE)).status == 201


async def test_paying_or_giving_back_frees_the_address(proxied_client: Client) -> None:
    client = proxied_client
    sale_id = (await create(client, stock=10, holds_per_address=1))["sale_id"]
    first = await (await buy(client, sale_id, "mum", HOME)).json()
    assert (await buy(client, sale_id, "dad", HOME)).status == 409
    # Cancelled: the unit goes back to the sale and the address may hold one again.
    cancelled = await client.post(f"/v1/orders/{first['order_id']}/cancel")
    assert cancelled.status == 200
    second = await buy(client, sale_id, "dad", HOME)
    assert second.status == 201
    # Paid: the units are no longer unpaid ones, so they no longer count against the cap.
    confirmed = await client.post(f"/v1/orders/{(await second.json())['order_id']}/confirm")
    assert confirmed.status == 200
    assert (await buy(client, sale_id, "kid", HOME)).status == 201
    assert (await buy(client, sale_id, "gran", HOME)).status == 409


async def test_concurrent_attempts_from_one_address_take_exactly_the_cap(
    proxied_client: Client,
) -> None:
    client = proxied_client
    sale_id = (await create(client, stock=100, holds_per_address=3))["sale_id"]
    answers = await asyncio.gather(*(buy(client, sale_id, f"bot-{i}", HOME) for i in range(60)))
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] * 3 + [409] * 57
    codes = {(await a.json(content_type=None)).get("code") for a in answers if a.status == 409}
    assert codes == {"hold_limit_reached"}
    assert (await admin_view(client, sale_id))["stock_left"] == 97


async def test_the_operator_sets_and_lifts_the_cap(proxied_client: Client) -> None:
    client = proxied_client
    sale = await create(client, stock=10)
    sale_id, path = sale["sale_id"], f"/admin/sales/{sale['sale_id']}"
    assert sale["holds_per_address"] is None
    assert (await buy(client, sale_id, "early", HOME)).status == 201  # taken without a cap
    capped = await client.patch(path, json={"holds_per_address": 1}, headers=ADMIN)
    assert capped.status == 200
    assert (await capped.json())["holds_per_address"] == 1
    # The hold taken before the cap does not count against it (documented in API docs).
    assert (await buy(client, sale_id, "mum", HOME)).status == 201
    assert (await buy(client, sale_id, "dad", HOME)).status == 409
    lifted = await client.patch(path, json={"holds_per_address": None}, headers=ADMIN)
    assert (await lifted.json())["holds_per_address"] is None
    assert (await buy(client, sale_id, "dad", HOME)).status == 201


async def test_an_integral_cap_is_an_integer_however_it_is_spelled(proxied_client: Client) -> None:
    sale = await create(proxied_client, holds_per_address=2.0)  # JSON Schema's integer 2
    assert sale["holds_per_address"] == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", 1_000_001])
async def test_a_bad_cap_is_refused_and_changes_nothing(proxied_client: Client, value: Any) -> None:
    client = proxied_client
    body = sale_body(holds_per_address=value)
    created = await client.post("/admin/sales", json=body, headers=ADMIN)
    assert created.status == 400
    problem = await created.json(content_type=None)
    assert problem["code"] == "invalid_request"
    assert "holds_per_address" in problem["detail"]
    assert (await client.get(f"/admin/sales/{body['sale_id']}", headers=ADMIN)).status == 404
    sale = await create(client, holds_per_address=2)
    path = f"/admin/sales/{sale['sale_id']}"
    patched = await client.patch(path, json={"holds_per_address": value}, headers=ADMIN)
    assert patched.status == 400
    assert "holds_per_address" in (await patched.json(content_type=None))["detail"]
    assert (await admin_view(client, sale["sale_id"]))["holds_per_address"] == 2


async def test_expiry_frees_the_address_and_the_audit_agrees(
    store: SaleStore, redis: Redis, sink: OrderSink, settings: Settings
) -> None:
    sale = await new_sale(store, stock=5, per_user_limit=1, hold_seconds=1, holds_per_address=2)
    home, elsewhere = "203.0.113.7", "198.51.100.20"
    first = await store.purchase(sale.sale_id, "mum", 1, address=home)
    assert isinstance(first, Reservation)
    assert isinstance(await store.purchase(sale.sale_id, "dad", 1, address=home), Reservation)
    assert isinstance(await store.purchase(sale.sale_id, "neighbour", 1, address=elsewhere),
                      Reservation)  # fmt: skip
    refused = await store.purchase(sale.sale_id, "kid", 1, address=home)
    assert refused == Rejected(Rejection.HOLD_LIMIT_REACHED)
    held = await redis.hgetall(keys.held(sale.sale_id))
    assert held[keys.ADDRESS_FIELD_PREFIX + home] == "2"
    worker = make_worker(redis, sink, settings, "holds-per-address")

    async def all_expired() -> bool:
        await worker.burst()
        current = await store.get_sale(sale.sale_id)
        assert isinstance(current, SaleRecord)
        return current.stock_left == 5

    await eventually(all_expired, within=10, what="the three holds to expire")
    held = await redis.hgetall(keys.held(sale.sale_id))
    assert held == {}  # users and addresses alike
    assert isinstance(await store.purchase(sale.sale_id, "kid", 1, address=home), Reservation)
    await worker.burst()
    assert (await audit_sale(redis, sink, sale.sale_id)).violations == []


async def test_the_audit_finds_address_bookkeeping_that_disagrees(
    store: SaleStore, redis: Redis, sink: OrderSink, settings: Settings
) -> None:
    sale = await new_sale(store, stock=5, holds_per_address=2)
    assert isinstance(await store.purchase(sale.sale_id, "mum", 1, address="203.0.113.7"),
                      Reservation)  # fmt: skip
    await make_worker(redis, sink, settings, "holds-audit").burst()
    assert (await audit_sale(redis, sink, sale.sale_id)).violations == []
    await redis.hincrby(keys.held(sale.sale_id), keys.ADDRESS_FIELD_PREFIX + "203.0.113.7", 1)
    violations = (await audit_sale(redis, sink, sale.sale_id)).violations
    assert any("holds_per_address" in v for v in violations)


async def test_without_a_cap_no_address_is_counted(store: SaleStore, redis: Redis) -> None:
    sale = await new_sale(store, stock=5, per_user_limit=5)
    for _ in range(3):
        assert isinstance(await store.purchase(sale.sale_id, "u", 1, address="203.0.113.7"),
                          Reservation)  # fmt: skip
    assert await redis.hgetall(keys.held(sale.sale_id)) == {"u": "3"}
    patched = await store.patch_sale(sale.sale_id, SaleChange(holds_per_address=1))
    assert isinstance(patched, SaleRecord)
    assert patched.holds_per_address == 1
    assert isinstance(await store.purchase(sale.sale_id, "u", 1, address="203.0.113.7"),
                      Reservation)  # fmt: skip
    assert await store.purchase(sale.sale_id, "u", 1, address="203.0.113.7") == Rejected(
        Rejection.HOLD_LIMIT_REACHED
    )
