"""Shopper-facing routes: parse the request, ask the purchase service, render its answer."""

from __future__ import annotations

from aiohttp import web

from flashsale.api.codec import decode_body, fingerprint, respond
from flashsale.api.context import CLIENT, DEADLINE, PURCHASES, ROOMS
from flashsale.api.params import idempotency_key, path_id, purchase_token
from flashsale.api.problems import ProblemCode, ProblemError, rejection_problem
from flashsale.api.schemas import (
    PurchaseRequest,
    ReservationView,
    order_view,
    pending_order_view,
    pending_view,
    sale_view,
)
from flashsale.records import OrderRecord, OrderStatus
from flashsale.store.outcomes import Pending, Rejected, Rejection
from flashsale.timefmt import format_ms

QUEUE_REQUIRED = Rejected(Rejection.QUEUE_REQUIRED)
# Seconds before a shopper with a 202 should ask about the order: settling takes about that.
PENDING_RETRY_AFTER = "1"


async def get_sale(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    sale = await request.app[PURCHASES].sale(sale_id, deadline=request[DEADLINE])
    if sale is None:
        raise ProblemError(ProblemCode.NOT_FOUND, f"no sale with id {sale_id!r}")
    return respond(request, sale_view(sale))


async def purchase(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    key = idempotency_key(request)
    purchases, rooms = request.app[PURCHASES], request.app[ROOMS]
    token = purchase_token(request)
    room_on = rooms.requires_token(sale_id)
    if room_on and token is None:
        raise rejection_problem(QUEUE_REQUIRED)  # refused before the body is read
    if key is None:
        sold_out = purchases.answer_sold_out_early(sale_id)
        if sold_out is not None:
            raise rejection_problem(sold_out)  # the body is not even parsed
    body = await decode_body(request, PurchaseRequest)
    queue_pass = token is not None and rooms.token_valid(sale_id, body.user_id, token)
    if room_on and not queue_pass:
        raise rejection_problem(QUEUE_REQUIRED)
    outcome = await purchases.purchase(
        sale_id,
        body.user_id,
        body.quantity,
        idempotency_key=key,
        # Only a keyed request is ever compared with an earlier one.
        fingerprint=fingerprint(body) if key else "",
        deadline=request[DEADLINE],
        address=request[CLIENT],
        queue_pass=queue_pass,
    )
    if isinstance(outcome, Rejected):
        if outcome.reason is Rejection.QUEUE_REQUIRED:
            rooms.learn_room_is_on(sale_id)
        raise rejection_problem(outcome)
    headers = {"Location": f"/v1/orders/{outcome.order_id}"}
    if isinstance(outcome, Pending):
        headers["Retry-After"] = PENDING_RETRY_AFTER
        return respond(request, pending_view(outcome), status=202, headers=headers)
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    view = ReservationView(
        order_id=outcome.order_id,
        sale_id=sale_id,
        user_id=outcome.user_id,
        quantity=outcome.quantity,
        status=OrderStatus.RESERVED,
        expires_at=format_ms(outcome.expires_at),
    )
    return respond(request, view, status=201, headers=headers)


async def get_order(request: web.Request) -> web.Response:
    order_id = path_id(request, "order_id")
    order = await request.app[PURCHASES].order(order_id, deadline=request[DEADLINE])
    if isinstance(order, Pending):
        return respond(request, pending_order_view(order), headers={"Retry-After": "1"})
    return respond(request, order_view(_found(order, order_id)))


async def confirm_order(request: web.Request) -> web.Response:
    order_id = path_id(request, "order_id")
    outcome = await request.app[PURCHASES].confirm(order_id, deadline=request[DEADLINE])
    return respond(request, order_view(_settled(outcome, order_id)))


async def cancel_order(request: web.Request) -> web.Response:
    order_id = path_id(request, "order_id")
    outcome = await request.app[PURCHASES].cancel(order_id, deadline=request[DEADLINE])
    return respond(request, order_view(_settled(outcome, order_id)))


def _settled(outcome: OrderRecord | Rejected, order_id: str) -> OrderRecord:
    if isinstance(outcome, Rejected):
        if outcome.reason is Rejection.NOT_FOUND:
            raise _no_order(order_id)
        raise rejection_problem(outcome)
    return outcome


def _found(order: OrderRecord | None, order_id: str) -> OrderRecord:
    if order is None:
        raise _no_order(order_id)
    return order


def _no_order(order_id: str) -> ProblemError:
    return ProblemError(ProblemCode.NOT_FOUND, f"no order with id {order_id!r}")
