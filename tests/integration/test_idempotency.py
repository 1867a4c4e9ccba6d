"""Idempotency-Key: replays answer the first answer and never take stock twice."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from flashsale import keys
from flashsale.settings import Settings
from tests.helpers import ADMIN
from tests.integration.conftest import CreateSale
from tests.polling import eventually

Client = TestClient[Any, Any]


async def purchase(
    client: Client, sale_id: str, user: str, quantity: int, key: str | None
) -> tuple[int, dict[str, Any], bool]:
    headers = {"Idempotency-Key": key} if key else {}
    response = await client.post(
        f"/v1/sales/{sale_id}/purchases",
        json={"user_id": user, "quantity": quantity},
        headers=headers,
    )
    body = await response.json(content_type=None)
    return response.status, body, response.headers.get("Idempotent-Replayed") == "true"


async def stock_left(client: Client, sale_id: str) -> int:
    view = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    return int(view["stock_left"])


async def test_sequential_replays_answer_the_first_answer(
    client: Client, create_sale: CreateSale
) -> None:
    sale = await create_sale(stock=5, per_user_limit=2)
    first = await purchase(client, sale["sale_id"], "u1", 1, "key-1")
    replays = [await purchase(client, sale["sale_id"], "u1", 1, "key-1") for _ in range(3)]
    assert first[0] == 201
    assert not first[2]
    assert all(r[:2] == first[:2] and r[2] for r in replays)
    assert await stock_left(client, sale["sale_id"]) == 4
    order = await client.get(f"/v1/orders/{first[1]['order_id']}")
    assert order.status == 200


async def test_concurrent_replays_take_stock_once(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=5, per_user_limit=5)
    answers = await asyncio.gather(
        *(purchase(client, sale["sale_id"], "u1", 2, "same-moment") for _ in range(40))
    )
    assert {a[0] for a in answers} == {201}
    assert len({a[1]["order_id"] for a in answers}) == 1
    assert sum(not a[2] for a in answers) == 1  # exactly one of them did the work
    assert await stock_left(client, sale["sale_id"]) == 3


async def test_same_key_with_another_body_is_422_and_changes_nothing(
    client: Client, create_sale: CreateSale
) -> None:
    sale = await create_sale(stock=5, per_user_limit=3)
    assert (await purchase(client, sale["sale_id"], "u1", 1, "key-2"))[0] == 201
    status, body, _ = await purchase(client, sale["sale_id"], "u1", 2, "key-2")
    assert (status, body["code"]) == (422, "idempotency_conflict")
    assert await stock_left(client, sale["sale_id"]) == 4


async def test_keys_are_scoped_per_user(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=5)
    a = await purchase(client, sale["sale_id"], "u1", 1, "shared-key")
    b = await purchase(client, sale["sale_id"], "u2", 1, "shared-key")
    assert (a[0], b[0]) == (201, 201)
    assert a[1]["order_id"] != b[1]["order_id"]
    assert await stock_left(client, sale["sale_id"]) == 3


async def test_a_rejection_is_replayed_too(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=2, per_user_limit=5)
    assert (await purchase(client, sale["sale_id"], "u1", 1, None))[0] == 201
    # One unit left, two asked for: Redis refuses (the process's sold-out flag is not up).
    first = await purchase(client, sale["sale_id"], "u2", 2, "late")
    await client.patch(f"/admin/sales/{sale['sale_id']}", json={"add_stock": 1}, headers=ADMIN)
    again = await purchase(client, sale["sale_id"], "u2", 2, "late")
    assert (first[0], first[1]["code"]) == (409, "sold_out")
    assert again[:2] == first[:2]
    assert again[2]
    # The replay took nothing: the units added afterwards are still there for a new attempt.
    assert await stock_left(client, sale["sale_id"]) == 2


async def test_a_refusal_the_sold_out_flag_gave_is_not_remembered(
    client: Client, create_sale: CreateSale
) -> None:
    """It never reached the stock: once units come back, the same key is a fresh attempt."""
    sale = await create_sale(stock=1)
    assert (await purchase(client, sale["sale_id"], "u1", 1, None))[0] == 201  # flag up
    first = await purchase(client, sale["sale_id"], "u2", 1, "late")
    assert (first[0], first[1]["code"], first[2]) == (409, "sold_out", False)
    await client.patch(f"/admin/sales/{sale['sale_id']}", json={"add_stock": 1}, headers=ADMIN)

    # The flag clears when the stock-back announcement arrives (within a second).
    async def bought() -> tuple[int, dict[str, Any], bool] | None:
        answer = await purchase(client, sale["sale_id"], "u2", 1, "late")
        return answer if answer[0] == 201 else None

    again = await eventually(bought, within=2, what="the returned unit")
    assert again[1]["user_id"] == "u2"


async def test_without_a_key_each_press_is_a_new_attempt(
    client: Client, create_sale: CreateSale
) -> None:
    sale = await create_sale(stock=5, per_user_limit=2)
    first = await purchase(client, sale["sale_id"], "u1", 1, None)
    second = await purchase(client, sale["sale_id"], "u1", 1, None)
    assert (first[0], second[0]) == (201, 201)
    assert first[1]["order_id"] != second[1]["order_id"]


async def test_a_held_order_is_remembered_under_its_key_for_as_long_as_it_is_held(
    client: Client, create_sale: CreateSale, redis: Redis, settings: Settings
) -> None:
    """A hold may last up to 7 days, longer than the 24 h window: the record of the key that
    took it lives the window past the hold's end, so a retry meanwhile never takes twice."""
    hold_seconds = 3 * 24 * 3600
    sale = await create_sale(stock=5, hold_seconds=hold_seconds)
    held = await purchase(client, sale["sale_id"], "u1", 1, "long-hold")
    refused = await purchase(client, sale["sale_id"], "u2", 9, "too-many")
    assert (held[0], refused[0]) == (201, 409)
    window_ms = settings.purchases.idempotency_ttl_seconds * 1000
    held_ttl = await redis.pttl(keys.idempotency(sale["sale_id"], "u1", "long-hold"))
    refused_ttl = await redis.pttl(keys.idempotency(sale["sale_id"], "u2", "too-many"))
    assert window_ms + hold_seconds * 1000 - 60_000 < held_ttl <= window_ms + hold_seconds * 1000
    assert window_ms - 60_000 < refused_ttl <= window_ms
