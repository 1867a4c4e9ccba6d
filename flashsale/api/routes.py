"""The one route table: it feeds the router, the middlewares (who may call a route, and how
it is admitted) and /openapi.json, so that what is served and what is documented agree."""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from flashsale.api.handlers import admin, live, ops, pages, queue, shopper
from flashsale.api.params import PURCHASE_TOKEN_PATTERN
from flashsale.api.schemas import (
    AdminSaleView,
    CreatedSaleView,
    CreateSaleRequest,
    DeadLetterList,
    JoinQueueRequest,
    OrderView,
    PatchSaleRequest,
    PendingView,
    PurchaseRequest,
    QueueView,
    ReservationView,
    SaleList,
    SaleView,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Audience(enum.StrEnum):
    """Who calls a route; also its OpenAPI tag."""

    SHOPPER = "shopper"  # passes admission (rate limits, in-flight bound, deadline)
    OPERATOR = "operator"  # needs the admin bearer token
    OPERATIONS = "operations"  # probes and scrapers: neither


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: what a successful answer lets a client call next, and with which of
    its fields (clients and the stateful contract tests follow them)."""

    name: str
    operation_id: str
    parameter: str  # the path parameter of the linked operation
    field: str  # the field of this answer's body that fills it

    def document(self) -> dict[str, Any]:
        return {
            "operationId": self.operation_id,
            "parameters": {self.parameter: f"$response.body#/{self.field}"},
        }


def order_links(*names: str) -> tuple[Link, ...]:
    operations = {"order": "getOrder", "confirm": "confirmOrder", "cancel": "cancelOrder"}
    return tuple(Link(name, operations[name], "order_id", "order_id") for name in names)


def sale_links(*names: str) -> tuple[Link, ...]:
    operations = {
        "sale": "getSale", "purchase": "purchase", "adminSale": "getAdminSale",
        "patch": "patchSale", "end": "endSale",
    }  # fmt: skip
    return tuple(Link(name, operations[name], "sale_id", "sale_id") for name in names)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation_id: str
    audience: Audience
    summary: str
    ok_status: int
    ok_type: type | None
    errors: tuple[int, ...] = ()
    # Other successful answers: (status, body type, what it means).
    also: tuple[tuple[int, type, str], ...] = ()
    # Where the successful answers lead (the ok status's, and the same for each of `also`).
    links: tuple[Link, ...] = ()
    body: type | None = None
    headers: tuple[dict[str, Any], ...] = ()
    query: tuple[dict[str, Any], ...] = ()
    # Confirm and cancel finish a purchase: they skip the address limit and are shed last.
    finishes_purchase: bool = False
    # A purchase: its refusals count toward its sale.
    takes_stock: bool = False

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays of the same key by the same user with the same body, within 24 h, "
    "answer the first answer again and never take stock twice.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"},
}
PURCHASE_TOKEN_HEADER: dict[str, Any] = {
    "name": "Purchase-Token",
    "in": "header",
    "required": False,
    "description": "Needed while the sale's waiting room is on: the token its queue gave this "
    "user once admitted (403 queue_required without a valid one).",
    "schema": {"type": "string", "pattern": PURCHASE_TOKEN_PATTERN},
}
OPERATOR_IDEMPOTENCY_HEADER: dict[str, Any] = {
    **IDEMPOTENCY_HEADER,
    "description": "A change repeated with the same key (scoped to the sale), within 24 h, is "
    "applied once; the same key with another body answers 422. Without a key, the engine's own "
    "retries are still applied once.",
}
DEAD_LETTER_LIMIT: dict[str, Any] = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
}

SHOPPER, OPERATOR, OPERATIONS = Audience.SHOPPER, Audience.OPERATOR, Audience.OPERATIONS

ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/sales/{sale_id}", shopper.get_sale, "getSale", SHOPPER,
          "A sale as shoppers see it", 200, SaleView, (400, 404, 429, 503),
          links=sale_links("purchase")),
    Route("POST", "/v1/sales/{sale_id}/purchases", shopper.purchase, "purchase", SHOPPER,
          "Reserve units for a user until expires_at", 201, ReservationView,
          (400, 403, 404, 409, 413, 422, 429, 503), body=PurchaseRequest,
          headers=(IDEMPOTENCY_HEADER, PURCHASE_TOKEN_HEADER), takes_stock=True,
          links=order_links("order", "confirm", "cancel"),
          also=((202, PendingView, "Pending: the attempt reached Redis, its outcome is not "
                 "known yet; GET the order (Location) after Retry-After until it is settled: "
                 "reserved, or 404 (it took nothing and never will)"),)),
    Route("POST", "/v1/sales/{sale_id}/queue", queue.join_queue, "joinQueue", SHOPPER,
          "Join the sale's waiting room (201; 200 with the same ticket when already in it)",
          201, QueueView, (400, 404, 409, 413, 429, 503), body=JoinQueueRequest,
          also=((200, QueueView, "Already in the queue: the same ticket again"),),
          links=(Link("status", "queueStatus", "ticket", "ticket"),)),
    Route("GET", "/v1/sales/{sale_id}/queue/{ticket}", queue.queue_status, "queueStatus",
          SHOPPER, "A waiter's place, estimated wait, and - once admitted - the purchase "
          "token (send it as the Purchase-Token header)", 200, QueueView,
          (400, 404, 429, 503)),
    Route("GET", "/v1/sales/{sale_id}/waiting-room", pages.waiting_room_page, "waitingRoomPage",
          SHOPPER, "The reference waiting page (HTML): joins, waits, buys", 200, None, (400,)),
    Route("GET", "/v1/orders/{order_id}", shopper.get_order, "getOrder", SHOPPER,
          "An order", 200, OrderView, (400, 404, 429, 503),
          links=order_links("confirm", "cancel")),
    Route("POST", "/v1/orders/{order_id}/confirm", shopper.confirm_order, "confirmOrder",
          SHOPPER, "Payment went through: the units are sold for good (idempotent)", 200,
          OrderView, (400, 404, 409, 503), finishes_purchase=True,
          links=order_links("order", "cancel")),
    Route("POST", "/v1/orders/{order_id}/cancel", shopper.cancel_order, "cancelOrder", SHOPPER,
          "The shopper gives the order up: its units go back on sale at once (idempotent)",
          200, OrderView, (400, 404, 409, 503), finishes_purchase=True,
          links=order_links("order", "confirm")),
    Route("GET", "/admin/sales", admin.list_sales, "listSales", OPERATOR,
          "Every sale, with counts", 200, SaleList, (503,)),
    Route("POST", "/admin/sales", admin.create_sale, "createSale", OPERATOR,
          "Schedule a sale", 201, CreatedSaleView, (400, 409, 413, 503), body=CreateSaleRequest,
          links=sale_links("sale", "purchase", "adminSale", "patch", "end")),
    Route("GET", "/admin/sales/{sale_id}", admin.get_sale, "getAdminSale", OPERATOR,
          "A sale with counts", 200, AdminSaleView, (400, 404, 503)),
    Route("PATCH", "/admin/sales/{sale_id}", admin.patch_sale, "patchSale", OPERATOR,
          "Change a sale: add stock, move the window, pause, change the per-user or "
          "per-address limit", 200,
          AdminSaleView, (400, 404, 409, 413, 422, 503), body=PatchSaleRequest,
          headers=(OPERATOR_IDEMPOTENCY_HEADER,), links=sale_links("purchase", "end")),
    Route("GET", "/admin/sales/{sale_id}/live", live.watch_sale, "watchSale", OPERATOR,
          "The sale's live figures as server-sent events (text/event-stream), one a second: "
          "stock, unit counts, attempts and shed per second by reason, purchase latency "
          "p50/p99, waiting room, order backlog, breaker", 200, None, (400, 404, 503)),
    Route("POST", "/admin/sales/{sale_id}/end", admin.end_sale, "endSale", OPERATOR,
          "End the sale now", 200, AdminSaleView, (400, 404, 503)),
    Route("GET", "/admin/dead-letters", admin.dead_letters, "listDeadLetters", OPERATOR,
          "Order events the order store could not take, newest first", 200, DeadLetterList,
          (400, 503), query=(DEAD_LETTER_LIMIT,)),
    Route("GET", "/console", pages.console_page, "consolePage", OPERATIONS,
          "The operators' live page (HTML): asks for the admin token, keeps it in the tab, "
          "follows a sale through its live stream", 200, None),
    Route("GET", "/healthz", ops.healthz, "healthz", OPERATIONS,
          "The process is running", 200, None),
    Route("GET", "/readyz", ops.readyz, "readyz", OPERATIONS,
          "Redis answers a script round trip", 200, None, (503,)),
    Route("GET", "/metrics", ops.metrics, "metrics", OPERATIONS,
          "Prometheus text exposition", 200, None),
    Route("GET", "/openapi.json", ops.openapi, "openapi", OPERATIONS,
          "This document", 200, None),
)  # fmt: skip

_BY_HANDLER: dict[Handler, Route] = {route.handler: route for route in ROUTES}
assert len(_BY_HANDLER) == len(ROUTES), "each handler serves one route"


def _first_segment(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


def _audience_by_segment() -> dict[str, Audience]:
    """The audience of every first path segment whose routes all share one ("admin": operator)."""
    found: dict[str, set[Audience]] = {}
    for route in ROUTES:
        found.setdefault(_first_segment(route.path), set()).add(route.audience)
    return {segment: next(iter(kinds)) for segment, kinds in found.items() if len(kinds) == 1}


_AUDIENCE_BY_SEGMENT = _audience_by_segment()


def add_routes(router: web.UrlDispatcher) -> None:
    for route in ROUTES:
        router.add_route(route.method, route.path, route.handler)


def route_of(request: web.Request) -> Route | None:
    """The table's entry for the route a request matched; None when it matched none."""
    return _BY_HANDLER.get(request.match_info.handler)


def audience_of(request: web.Request, route: Route | None) -> Audience:
    """Who may call it. A request that matched no route (404, 405) is judged as the routes
    that share its first path segment are, so that nothing under /admin answers a caller
    without the token, not even "no such route"."""
    if route is not None:
        return route.audience
    return _AUDIENCE_BY_SEGMENT.get(_first_segment(request.path), Audience.OPERATIONS)
