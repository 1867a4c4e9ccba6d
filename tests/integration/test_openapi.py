"""/openapi.json documents every route the app serves, and the answers match it."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN, sale_body

Client = TestClient[Any, Any]


async def fetch_document(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    return document


def served_routes(client: Client) -> set[tuple[str, str]]:
    routes = set()
    app = client.app
    assert app is not None
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD":
            routes.add((route.method.lower(), str(path)))
    return routes


async def test_document_is_openapi_31_and_lists_exactly_the_served_routes(
    client: Client,
) -> None:
    document = await fetch_document(client)
    assert document["openapi"].startswith("3.1")
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == served_routes(client)


def check(document: dict[str, Any], method: str, template: str, status: int, body: Any) -> None:
    responses = document["paths"][template][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {template} answered undocumented {status}"
    content = responses[str(status)].get("content")
    if content is None:
        return
    schema = next(iter(content.values()))["schema"]
    jsonschema.Draft202012Validator({**schema, "components": document["components"]}).validate(body)


async def test_answers_match_the_documented_schemas(client: Client) -> None:
    document = await fetch_document(client)
    body = sale_body(stock=1)
    sale_id = body["sale_id"]
    calls: list[tuple[str, str, str, dict[str, Any] | None, bool]] = [
        ("post", "/admin/sales", "/admin/sales", body, True),
        ("post", "/admin/sales", "/admin/sales", body, True),  # 409 sale_exists
        ("get", f"/v1/sales/{sale_id}", "/v1/sales/{sale_id}", None, False),
        ("get", "/v1/sales/missing", "/v1/sales/{sale_id}", None, False),
        ("post", f"/v1/sales/{sale_id}/purchases", "/v1/sales/{sale_id}/purchases",
         {"user_id": "o1", "quantity": 1}, False),
        ("post", f"/v1/sales/{sale_id}/purchases", "/v1/sales/{sale_id}/purchases",
         {"user_id": "o2", "quantity": 1}, False),  # 409 sold_out
        ("post", f"/v1/sales/{sale_id}/purchases", "/v1/sales/{sale_id}/purchases",
         {"user_id": "o2"}, False),  # 400
        ("get", "/admin/sales", "/admin/sales", None, True),
        ("get", "/admin/sales", "/admin/sales", None, False),  # 401
        ("get", f"/admin/sales/{sale_id}", "/admin/sales/{sale_id}", None, True),
        ("patch", f"/admin/sales/{sale_id}", "/admin/sales/{sale_id}", {"add_stock": 1}, True),
        ("post", f"/admin/sales/{sale_id}/end", "/admin/sales/{sale_id}/end", None, True),
        ("get", "/v1/orders/nothing", "/v1/orders/{order_id}", None, False),
        ("get", "/healthz", "/healthz", None, False),
        ("get", "/readyz", "/readyz", None, False),
        ("get", "/metrics", "/metrics", None, False),
    ]  # fmt: skip
    for method, path, template, payload, admin in calls:
        response = await client.request(
            method.upper(), path, json=payload, headers=ADMIN if admin else {}
        )
        answer = await response.json(content_type=None) if "json" in response.content_type else None
        check(document, method, template, response.status, answer)
        if path.endswith("/purchases") and response.status == 201:
            assert isinstance(answer, dict)
            order = await client.get(f"/v1/orders/{answer['order_id']}")
            check(document, "get", "/v1/orders/{order_id}", 200, await order.json())


async def test_every_operation_has_a_unique_id_and_an_audience_tag(client: Client) -> None:
    document = await fetch_document(client)
    operations = [op for item in document["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(set(ids)) == len(ids) == len(served_routes(client))
    assert {"purchase", "confirmOrder", "cancelOrder", "createSale"} <= set(ids)
    tags = {tag["name"] for tag in document["tags"]}
    assert tags == {"shopper", "operator", "operations"}
    assert all(len(op["tags"]) == 1 and op["tags"][0] in tags for op in operations)
    # Operator routes, and only they, need the bearer token.
    for op in operations:
        assert ("security" in op) == (op["tags"] == ["operator"]), op["operationId"]
