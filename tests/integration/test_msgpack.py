"""msgpack bodies are accepted and answered with the same rules as JSON."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp.test_utils import TestClient

from tests.integration.conftest import CreateSale

Client = TestClient[Any, Any]
MSGPACK = "application/msgpack"


async def test_msgpack_purchase_and_answer(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=2)
    response = await client.post(
        f"/v1/sales/{sale['sale_id']}/purchases",
        data=msgspec.msgpack.encode({"user_id": "mp-user", "quantity": 1}),
        headers={"Content-Type": MSGPACK, "Accept": MSGPACK},
    )
    assert response.status == 201
    assert response.content_type == MSGPACK
    order = msgspec.msgpack.decode(await response.read())
    assert (order["user_id"], order["quantity"], order["status"]) == ("mp-user", 1, "reserved")


async def test_msgpack_body_is_validated_like_json(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=2)
    response = await client.post(
        f"/v1/sales/{sale['sale_id']}/purchases",
        data=msgspec.msgpack.encode({"user_id": "mp-user", "quantity": "1"}),
        headers={"Content-Type": MSGPACK},
    )
    assert response.status == 400
    assert "quantity" in (await response.json(content_type=None))["detail"]


async def test_json_stays_the_default(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale()
    response = await client.get(f"/v1/sales/{sale['sale_id']}", headers={"Accept": "*/*"})
    assert response.content_type == "application/json"
