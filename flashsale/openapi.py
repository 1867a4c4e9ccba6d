"""The OpenAPI 3.1 document of the routes this build serves, from the same types it decodes."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from flashsale import __version__
from flashsale.models import (
    AdminSaleView,
    CreateSaleRequest,
    DeadLetterList,
    OrderView,
    PatchSaleRequest,
    PurchaseRequest,
    ReservationView,
    SaleList,
    SaleView,
)
from flashsale.problems import ProblemDocument

_REF = "#/components/schemas/{name}"
_SCHEMA_TYPES: tuple[type, ...] = (
    PurchaseRequest,
    CreateSaleRequest,
    PatchSaleRequest,
    SaleView,
    AdminSaleView,
    SaleList,
    ReservationView,
    OrderView,
    ProblemDocument,
    DeadLetterList,
)
_BODY_TYPES = ("application/json", "application/msgpack")
_ERROR_DESCRIPTIONS = {
    "400": "invalid_request: malformed body, wrong types, out-of-range values, unknown fields",
    "401": "unauthorized: missing or wrong bearer token",
    "404": "not_found",
    "409": "a business refusal; `code` says which (order_not_pending for confirm/cancel)",
    "413": "payload_too_large",
    "422": "idempotency_conflict",
    "429": "rate_limited (carries Retry-After)",
    "503": "overloaded: shedding load or the store is unavailable (carries Retry-After)",
}


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=kind.__name__)}


def _content(kind: type) -> dict[str, Any]:
    return {media: {"schema": _ref(kind)} for media in _BODY_TYPES}


def _operation(
    summary: str,
    ok_status: str,
    ok_type: type | None,
    errors: tuple[str, ...],
    *,
    body: type | None = None,
    params: tuple[str, ...] = (),
    admin: bool = False,
    headers: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        ok_status: {"description": summary} | ({"content": _content(ok_type)} if ok_type else {}),
    }
    for status in errors + (("401",) if admin else ()):
        responses[status] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/problem+json": {"schema": _ref(ProblemDocument)}},
        }
    operation: dict[str, Any] = {"summary": summary, "responses": dict(sorted(responses.items()))}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _identifier_schema()}
        for name in params
    ] + list(headers)
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _content(body)}
    if admin:
        operation["security"] = [{"adminToken": []}]
    return operation


def _identifier_schema() -> dict[str, Any]:
    return {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}


_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays of the same key by the same user with the same body, within 24 h, "
    "answer the first answer again and never take stock twice.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"},
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(_SCHEMA_TYPES, ref_template=_REF)
    sale = ("sale_id",)
    paths: dict[str, Any] = {
        "/v1/sales/{sale_id}": {
            "get": _operation(
                "A sale as shoppers see it",
                "200",
                SaleView,
                ("400", "404", "429", "503"),
                params=sale,
            ),
        },
        "/v1/sales/{sale_id}/purchases": {
            "post": _operation(
                "Reserve units for a user until expires_at",
                "201",
                ReservationView,
                ("400", "404", "409", "413", "422", "429", "503"),
                body=PurchaseRequest,
                params=sale,
                headers=(_IDEMPOTENCY_HEADER,),
            ),
        },
        "/v1/orders/{order_id}": {
            "get": _operation(
                "An order",
                "200",
                OrderView,
                ("400", "404", "429", "503"),
                params=("order_id",),
            ),
        },
        "/v1/orders/{order_id}/confirm": {
            "post": _operation(
                "Payment went through: the units are sold for good (idempotent)",
                "200",
                OrderView,
                ("400", "404", "409", "503"),
                params=("order_id",),
            ),
        },
        "/v1/orders/{order_id}/cancel": {
            "post": _operation(
                "The shopper gives the order up: its units go back on sale at once (idempotent)",
                "200",
                OrderView,
                ("400", "404", "409", "503"),
                params=("order_id",),
            ),
        },
        "/admin/dead-letters": {
            "get": {
                **_operation(
                    "Order events the order store could not take, newest first",
                    "200",
                    DeadLetterList,
                    ("400", "503"),
                    admin=True,
                ),
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                    }
                ],
            },
        },
        "/admin/sales": {
            "get": _operation("Every sale, with counts", "200", SaleList, ("503",), admin=True),
            "post": _operation(
                "Schedule a sale",
                "201",
                SaleView,
                ("400", "409", "413", "503"),
                body=CreateSaleRequest,
                admin=True,
            ),
        },
        "/admin/sales/{sale_id}": {
            "get": _operation(
                "A sale with counts",
                "200",
                AdminSaleView,
                ("400", "404", "503"),
                params=sale,
                admin=True,
            ),
            "patch": _operation(
                "Change a sale: add stock, move the window, pause, change the per-user limit",
                "200",
                AdminSaleView,
                ("400", "404", "409", "413", "503"),
                body=PatchSaleRequest,
                params=sale,
                admin=True,
            ),
        },
        "/admin/sales/{sale_id}/end": {
            "post": _operation(
                "End the sale now",
                "200",
                AdminSaleView,
                ("400", "404", "503"),
                params=sale,
                admin=True,
            ),
        },
        "/healthz": {"get": _operation("The process is running", "200", None, ())},
        "/readyz": {"get": _operation("Redis answers a script round trip", "200", None, ("503",))},
        "/metrics": {"get": _operation("Prometheus text exposition", "200", None, ())},
        "/openapi.json": {"get": _operation("This document", "200", None, ())},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flashsale",
            "version": __version__,
            "description": "Flash-sale order engine. Every non-2xx answer is an RFC 9457 "
            "problem document (application/problem+json) with a `code`.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
