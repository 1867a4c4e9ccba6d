"""Shopper-facing routes: view a sale, attempt a purchase, look up an order."""

from __future__ import annotations

from aiohttp import web

from flashsale.codec import decode_body, fingerprint, respond
from flashsale.context import METRICS, STORE
from flashsale.handlers.params import idempotency_key, path_id
from flashsale.models import OrderStatus, PurchaseRequest, ReservationView, order_view, sale_view
from flashsale.outcomes import Rejected, Rejection
from flashsale.problems import Problem, ProblemCode
from flashsale.shedding import ADMISSION, rate_limited, within_deadline
from flashsale.timefmt import format_ms

_REJECTION_DETAILS: dict[Rejection, str] = {
    Rejection.NOT_FOUND: "no sale with this id",
    Rejection.SALE_NOT_STARTED: "the sale has not opened yet",
    Rejection.SALE_ENDED: "the sale has ended",
    Rejection.SALE_PAUSED: "the sale is paused by the operator",
    Rejection.SOLD_OUT: "not enough stock left for this quantity",
    Rejection.USER_LIMIT_REACHED: "this user already holds the most units allowed per user",
    Rejection.IDEMPOTENCY_CONFLICT: "this Idempotency-Key was used with a different body",
    Rejection.SALE_EXISTS: "a sale with this id exists already",
    Rejection.INVALID_WINDOW: "ends_at must be after starts_at",
    Rejection.ORDER_NOT_PENDING: "the order is no longer reserved",
    Rejection.OVERLOADED: "the order store is behind; retry after the given delay",
}
# Seconds a shopper should wait after a backlog refusal: the worker drains thousands of
# events a second, so the backlog is usually gone by then.
BACKLOG_RETRY_AFTER = "1"


def rejection_problem(rejected: Rejected) -> Problem:
    """The one place a script's refusal becomes an HTTP answer."""
    if rejected.reason is Rejection.INVALID_WINDOW:
        code = ProblemCode.INVALID_REQUEST
    else:
        code = ProblemCode(rejected.reason.value)
    headers = {"Idempotent-Replayed": "true"} if rejected.replayed else {}
    if rejected.reason is Rejection.OVERLOADED:
        headers["Retry-After"] = BACKLOG_RETRY_AFTER
    return Problem(code, _REJECTION_DETAILS[rejected.reason], headers)


async def get_sale(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    async with within_deadline(request):
        sale = await request.app[STORE].get_sale(sale_id)
    if sale is None:
        raise Problem(ProblemCode.NOT_FOUND, f"no sale with id {sale_id!r}")
    return respond(request, sale_view(sale))


async def purchase(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    key = idempotency_key(request)
    body = await decode_body(request, PurchaseRequest)
    admission = request.app[ADMISSION]
    metrics = request.app[METRICS]
    wait = admission.users.take(f"{sale_id}\n{body.user_id}")
    if wait:
        admission.shed("rate_limited_user", sale_id)
        raise rate_limited("too many purchase attempts by this user", wait)
    # A request with an Idempotency-Key may be the retry of a purchase that succeeded
    # before the sale sold out: only Redis knows its first answer.
    if key is None and admission.sold_out.is_sold_out(sale_id):
        metrics.sold_out_local.inc()
        metrics.count_attempt(Rejection.SOLD_OUT.value)
        admission.counts.rejected(sale_id)
        raise rejection_problem(Rejected(Rejection.SOLD_OUT))
    async with within_deadline(request):
        outcome = await request.app[STORE].purchase(
            sale_id,
            body.user_id,
            body.quantity,
            idempotency_key=key,
            # Only a keyed request is ever compared with an earlier one.
            fingerprint=fingerprint(body) if key else "",
        )
    if outcome.stock_left == 0:
        admission.sold_out.mark(sale_id)
    if isinstance(outcome, Rejected):
        if outcome.reason is Rejection.OVERLOADED:
            metrics.shed.labels("backlog").inc()
        metrics.count_attempt(outcome.reason.value)
        raise rejection_problem(outcome)
    metrics.count_attempt("ok")
    headers = {"Location": f"/v1/orders/{outcome.order_id}"}
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


async def confirm_order(request: web.Request) -> web.Response:
    return await _settle(request, confirm=True)


async def cancel_order(request: web.Request) -> web.Response:
    return await _settle(request, confirm=False)


async def _settle(request: web.Request, *, confirm: bool) -> web.Response:
    order_id = path_id(request, "order_id")
    store = request.app[STORE]
    async with within_deadline(request):
        outcome = await (store.confirm(order_id) if confirm else store.cancel(order_id))
        if isinstance(outcome, Rejected):
            problem = rejection_problem(outcome)
            if outcome.reason is Rejection.NOT_FOUND:
                problem = Problem(ProblemCode.NOT_FOUND, f"no order with id {order_id!r}")
            raise problem
        order = await store.get_order(order_id)
    if order is None:  # only if keys are deleted by hand between the two calls
        raise Problem(ProblemCode.NOT_FOUND, f"no order with id {order_id!r}")
    return respond(request, order_view(order))


async def get_order(request: web.Request) -> web.Response:
    order_id = path_id(request, "order_id")
    async with within_deadline(request):
        order = await request.app[STORE].get_order(order_id)
    if order is None:
        raise Problem(ProblemCode.NOT_FOUND, f"no order with id {order_id!r}")
    return respond(request, order_view(order))
