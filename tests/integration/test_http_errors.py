"""Every error code the routes can produce, as a client sees it; bad input changes nothing."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, from_now, sale_body
from tests.integration.conftest import CreateSale

Client = TestClient[Any, Any]
PROBLEM = "application/problem+json"


async def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    document: dict[str, Any] = await response.json(content_type=PROBLEM)
    assert document["status"] == status
    assert document["code"] == code
    assert document["type"].endswith(code)
    assert document["title"]
    assert document["detail"]
    return document


async def admin_view(client: Client, sale_id: str) -> dict[str, Any]:
    response = await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)
    assert response.status == 200
    view: dict[str, Any] = await response.json()
    return view


BAD_PURCHASES: list[tuple[str, bytes, dict[str, str], str]] = [
    ("malformed JSON", b'{"user_id": "u1", "quantity": 1', {}, "JSON"),
    ("not an object", b"[1, 2]", {}, "object"),
    ("quantity as a string", b'{"user_id": "u1", "quantity": "1"}', {}, "quantity"),
    ("quantity as a float", b'{"user_id": "u1", "quantity": 1.5}', {}, "quantity"),
    ("quantity as a bool", b'{"user_id": "u1", "quantity": true}', {}, "quantity"),
    ("quantity zero", b'{"user_id": "u1", "quantity": 0}', {}, "quantity"),
    ("quantity negative", b'{"user_id": "u1", "quantity": -3}', {}, "quantity"),
    ("user_id missing", b'{"quantity": 1}', {}, "user_id"),
    ("user_id empty", b'{"user_id": "", "quantity": 1}', {}, "user_id"),
    ("user_id too long", b'{"user_id": "' + b"u" * 65 + b'", "quantity": 1}', {}, "user_id"),
    ("user_id bad chars", b'{"user_id": "a b", "quantity": 1}', {}, "user_id"),
    ("unknown field", b'{"user_id": "u1", "quantity": 1, "price": 0}', {}, "price"),
    ("empty body", b"", {}, "empty"),
    ("form body", b"user_id=u1&quantity=1",
     {"Content-Type": "application/x-www-form-urlencoded"}, "Content-Type"),
    ("idempotency key too long", b'{"user_id": "u1", "quantity": 1}',
     {"Idempotency-Key": "k" * 129}, "Idempotency-Key"),
    ("idempotency key not printable", b'{"user_id": "u1", "quantity": 1}',
     {"Idempotency-Key": "k\u00e9y"}, "Idempotency-Key"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "headers", "named"),
    [case[1:] for case in BAD_PURCHASES],
    ids=[case[0] for case in BAD_PURCHASES],
)
async def test_bad_purchase_is_400_naming_the_problem_and_changes_nothing(
    client: Client, create_sale: CreateSale, body: bytes, headers: dict[str, str], named: str
) -> None:
    sale = await create_sale(stock=5)
    before = await admin_view(client, sale["sale_id"])
    response = await client.post(
        f"/v1/sales/{sale['sale_id']}/purchases",
        data=body,
        headers={"Content-Type": "application/json", **headers},
    )
    document = await assert_problem(response, 400, "invalid_request")
    assert named.lower() in document["detail"].lower()
    assert await admin_view(client, sale["sale_id"]) == before


@pytest.mark.parametrize("media_type", ["application/json", "application/msgpack"])
async def test_an_integral_number_is_an_integer_however_it_is_spelled(
    client: Client, create_sale: CreateSale, media_type: str
) -> None:
    """JSON Schema, and so /openapi.json, counts 2.0 as the integer 2: it buys 2 units."""
    sale = await create_sale(stock=5, per_user_limit=3)
    body = {"user_id": "u1", "quantity": 2.0}
    encoded = msgspec.json.encode(body) if "json" in media_type else msgspec.msgpack.encode(body)
    response = await client.post(
        f"/v1/sales/{sale['sale_id']}/purchases", data=encoded,
        headers={"Content-Type": media_type},
    )  # fmt: skip
    assert response.status == 201, await response.text()
    assert (await admin_view(client, sale["sale_id"]))["stock_left"] == 3


BAD_SALES: list[tuple[str, dict[str, Any], str]] = [
    ("stock zero", {"stock": 0}, "stock"),
    ("stock a string", {"stock": "10"}, "stock"),
    ("per_user_limit zero", {"per_user_limit": 0}, "per_user_limit"),
    ("hold_seconds zero", {"hold_seconds": 0}, "hold_seconds"),
    ("time without offset", {"starts_at": "2026-01-01T00:00:00"}, "starts_at"),
    ("time not a time", {"ends_at": "tomorrow"}, "ends_at"),
    ("window backwards", {"starts_at": from_now(hours=2), "ends_at": from_now(hours=1)},
     "ends_at"),
    ("sale_id bad chars", {"sale_id": "bad id!"}, "sale_id"),
    ("unknown field", {"discount": 10}, "discount"),
    ("sku empty", {"sku": ""}, "sku"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "named"), [case[1:] for case in BAD_SALES], ids=[case[0] for case in BAD_SALES]
)
async def test_bad_sale_is_400_and_creates_nothing(
    client: Client, overrides: dict[str, Any], named: str
) -> None:
    body = sale_body(**overrides)
    response = await client.post("/admin/sales", json=body, headers=ADMIN)
    document = await assert_problem(response, 400, "invalid_request")
    assert named in document["detail"]
    if re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", body["sale_id"]):
        lookup = await client.get(f"/v1/sales/{body['sale_id']}")
        await assert_problem(lookup, 404, "not_found")


async def test_missing_required_sale_field_is_named(client: Client) -> None:
    body = sale_body()
    del body["stock"]
    response = await client.post("/admin/sales", json=body, headers=ADMIN)
    document = await assert_problem(response, 400, "invalid_request")
    assert "stock" in document["detail"]


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({}, "no change"),
        ({"add_stock": 0}, "add_stock"),
        ({"paused": "yes"}, "paused"),
        ({"per_user_limit": None}, "per_user_limit"),
        ({"stock": 5}, "stock"),
        ({"ends_at": "2000-01-01T00:00:00Z"}, "ends_at"),
    ],
)
async def test_bad_patch_is_400_and_changes_nothing(
    client: Client, create_sale: CreateSale, patch: dict[str, Any], named: str
) -> None:
    sale = await create_sale()
    before = await admin_view(client, sale["sale_id"])
    response = await client.patch(f"/admin/sales/{sale['sale_id']}", json=patch, headers=ADMIN)
    document = await assert_problem(response, 400, "invalid_request")
    assert named in document["detail"]
    assert await admin_view(client, sale["sale_id"]) == before


ADMIN_ROUTES = [
    ("GET", "/admin/sales"),
    ("POST", "/admin/sales"),
    ("GET", "/admin/sales/any"),
    ("PATCH", "/admin/sales/any"),
    ("POST", "/admin/sales/any/end"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "test-admin-token-not-secret", "Basic abc"]
)
async def test_operator_routes_need_the_token(
    client: Client, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.request(method, path, json=sale_body(), headers=headers)
    await assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/admin/nothing-here"), ("DELETE", "/admin/sales")]
)
async def test_nothing_under_admin_answers_without_the_token(
    client: Client, method: str, path: str
) -> None:
    """Not even whether a route exists: an unknown path or method there is 401 first."""
    await assert_problem(await client.request(method, path), 401, "unauthorized")
    with_token = await client.request(method, path, headers=ADMIN)
    assert with_token.status in (404, 405)


async def test_unauthorized_create_creates_nothing(client: Client) -> None:
    body = sale_body()
    await client.post("/admin/sales", json=body, headers={"Authorization": "Bearer nope"})
    await assert_problem(await client.get(f"/v1/sales/{body['sale_id']}"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "admin"),
    [
        ("GET", "/v1/sales/no-such-sale", False),
        ("POST", "/v1/sales/no-such-sale/purchases", False),
        ("GET", "/v1/orders/no-such-order", False),
        ("GET", "/v1/orders/abcdefghij-0123", False),
        ("GET", "/admin/sales/no-such-sale", True),
        ("PATCH", "/admin/sales/no-such-sale", True),
        ("POST", "/admin/sales/no-such-sale/end", True),
        ("GET", "/v2/nothing-here", False),
    ],
)
async def test_not_found(client: Client, method: str, path: str, admin: bool) -> None:
    body = {"user_id": "u1", "quantity": 1} if "purchases" in path else {"paused": True}
    response = await client.request(method, path, json=body, headers=ADMIN if admin else {})
    await assert_problem(response, 404, "not_found")


async def test_wrong_method_is_405_problem(client: Client) -> None:
    response = await client.delete("/v1/sales/some-sale")
    assert response.status == 405
    assert response.content_type == PROBLEM
    assert "GET" in response.headers["Allow"]


async def test_body_over_the_limit_is_413(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale()
    before = await admin_view(client, sale["sale_id"])
    huge = b'{"user_id": "u1", "quantity": 1, "pad": "' + b"x" * 70_000 + b'"}'
    response = await client.post(
        f"/v1/sales/{sale['sale_id']}/purchases",
        data=huge,
        headers={"Content-Type": "application/json"},
    )
    await assert_problem(response, 413, "payload_too_large")
    assert await admin_view(client, sale["sale_id"]) == before


async def buy(client: Client, sale_id: str, user: str, quantity: int = 1, **headers: str) -> Any:
    return await client.post(
        f"/v1/sales/{sale_id}/purchases",
        json={"user_id": user, "quantity": quantity},
        headers=headers,
    )


async def test_sale_not_started(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(starts_at=from_now(hours=1), ends_at=from_now(hours=2))
    assert sale["status"] == "scheduled"
    await assert_problem(await buy(client, sale["sale_id"], "u1"), 409, "sale_not_started")


async def test_sale_ended_by_window_and_by_operator(
    client: Client, create_sale: CreateSale
) -> None:
    past = await create_sale(starts_at=from_now(hours=-2), ends_at=from_now(hours=-1))
    assert past["status"] == "ended"
    await assert_problem(await buy(client, past["sale_id"], "u1"), 409, "sale_ended")
    live = await create_sale()
    ended = await client.post(f"/admin/sales/{live['sale_id']}/end", headers=ADMIN)
    assert ended.status == 200
    assert (await ended.json())["status"] == "ended"
    await assert_problem(await buy(client, live["sale_id"], "u1"), 409, "sale_ended")


async def test_sale_paused_then_resumed(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale()
    path = f"/admin/sales/{sale['sale_id']}"
    paused = await client.patch(path, json={"paused": True}, headers=ADMIN)
    assert (await paused.json())["status"] == "paused"
    await assert_problem(await buy(client, sale["sale_id"], "u1"), 409, "sale_paused")
    await client.patch(path, json={"paused": False}, headers=ADMIN)
    assert (await buy(client, sale["sale_id"], "u1")).status == 201


async def test_sold_out_and_user_limit_reached(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=2, per_user_limit=1)
    assert (await buy(client, sale["sale_id"], "u1")).status == 201
    await assert_problem(await buy(client, sale["sale_id"], "u1"), 409, "user_limit_reached")
    assert (await buy(client, sale["sale_id"], "u2")).status == 201
    await assert_problem(await buy(client, sale["sale_id"], "u3"), 409, "sold_out")
    view = await (await client.get(f"/v1/sales/{sale['sale_id']}")).json()
    assert (view["status"], view["stock_left"]) == ("sold_out", 0)


async def test_sale_exists(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=7)
    again = sale_body(sale_id=sale["sale_id"], stock=99)
    response = await client.post("/admin/sales", json=again, headers=ADMIN)
    await assert_problem(response, 409, "sale_exists")
    view = await (await client.get(f"/v1/sales/{sale['sale_id']}")).json()
    assert view["stock_total"] == 7


async def test_changes_to_an_ended_sale_are_refused(
    client: Client, create_sale: CreateSale
) -> None:
    sale = await create_sale()
    await client.post(f"/admin/sales/{sale['sale_id']}/end", headers=ADMIN)
    response = await client.patch(
        f"/admin/sales/{sale['sale_id']}", json={"add_stock": 5}, headers=ADMIN
    )
    await assert_problem(response, 409, "sale_ended")
