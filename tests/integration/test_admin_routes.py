"""Operator routes: create with defaults, list, counts, patch each field, end."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, from_now, sale_body
from tests.integration.conftest import CreateSale
from tests.polling import eventually

Client = TestClient[Any, Any]


async def test_create_applies_contract_defaults_and_generates_an_id(client: Client) -> None:
    body = sale_body()
    for optional in ("sale_id", "per_user_limit", "hold_seconds"):
        del body[optional]
    response = await client.post("/admin/sales", json=body, headers=ADMIN)
    assert response.status == 201
    sale = await response.json()
    assert (sale["per_user_limit"], sale["hold_seconds"]) == (1, 600)
    assert sale["stock_left"] == sale["stock_total"] == body["stock"]
    assert response.headers["Location"] == f"/v1/sales/{sale['sale_id']}"
    public = await (await client.get(response.headers["Location"])).json()
    # The shoppers' view, plus the settings only the operator sees (API.md).
    assert sale.pop("holds_per_address") is None
    assert sale.pop("waiting_room") == {
        "enabled": False, "admit_per_second": None, "token_ttl_seconds": 120,
        "queue_opens_seconds": 900,
    }  # fmt: skip
    assert "queue" not in sale  # only while the room is on
    assert public == sale


async def test_times_are_rfc3339_utc(client: Client) -> None:
    body = sale_body(starts_at="2030-05-01T12:00:00+02:00", ends_at="2030-05-01T13:30:00+02:00")
    sale = await (await client.post("/admin/sales", json=body, headers=ADMIN)).json()
    assert (sale["starts_at"], sale["ends_at"]) == (
        "2030-05-01T10:00:00.000Z",
        "2030-05-01T11:30:00.000Z",
    )


async def test_list_and_counts(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=3)
    for user in ("a", "a", "b", "c", "d"):
        await client.post(
            f"/v1/sales/{sale['sale_id']}/purchases", json={"user_id": user, "quantity": 1}
        )
    expected = {
        "reserved": 3, "confirmed": 0, "cancelled": 0, "expired": 0,
        "attempts": 5, "rejected": 2, "shed": 0,
    }  # fmt: skip

    # Attempts answered from a process's sold-out flag reach the counts within a second.
    async def counted() -> list[dict[str, Any]] | None:
        listing = await (await client.get("/admin/sales", headers=ADMIN)).json()
        mine = [s for s in listing["sales"] if s["sale_id"] == sale["sale_id"]]
        assert len(mine) == 1
        return mine if mine[0]["counts"] == expected else None

    mine = await eventually(counted, within=5, what="the counts to add up")
    assert mine[0]["counts"] == expected
    assert mine[0]["status"] == "sold_out"


async def test_patch_changes_each_field(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=1, per_user_limit=1)
    path = f"/admin/sales/{sale['sale_id']}"
    new_end = "2031-01-01T00:00:00.000Z"
    response = await client.patch(
        path, json={"add_stock": 4, "per_user_limit": 3, "ends_at": new_end}, headers=ADMIN
    )
    assert response.status == 200
    patched = await response.json()
    assert (patched["stock_total"], patched["stock_left"]) == (5, 5)
    assert (patched["per_user_limit"], patched["ends_at"]) == (3, new_end)
    buy = await client.post(
        f"/v1/sales/{sale['sale_id']}/purchases", json={"user_id": "u", "quantity": 3}
    )
    assert buy.status == 201


async def test_moving_the_start_reschedules(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale()
    path = f"/admin/sales/{sale['sale_id']}"
    later = await client.patch(path, json={"starts_at": from_now(minutes=30)}, headers=ADMIN)
    assert (await later.json())["status"] == "scheduled"


async def test_end_is_idempotent(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale()
    path = f"/admin/sales/{sale['sale_id']}/end"
    first = await (await client.post(path, headers=ADMIN)).json()
    second = await (await client.post(path, headers=ADMIN)).json()
    assert first["status"] == second["status"] == "ended"
    assert first["ended_at"] == second["ended_at"] is not None
