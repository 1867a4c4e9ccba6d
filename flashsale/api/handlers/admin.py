"""Operator routes: schedule, inspect, change and end sales (the token is checked upstream)."""

from __future__ import annotations

from aiohttp import web
from msgspec import UNSET

from flashsale.api.codec import decode_body, fingerprint, respond
from flashsale.api.context import STORE
from flashsale.api.params import idempotency_key, path_id
from flashsale.api.problems import ProblemCode, ProblemError, rejection_problem
from flashsale.api.schemas import (
    CreateSaleRequest,
    DeadLetterList,
    PatchSaleRequest,
    SaleList,
    admin_sale_view,
    created_sale_view,
)
from flashsale.ids import new_sale_id
from flashsale.records import SaleRecord
from flashsale.store.outcomes import Rejected

DEAD_LETTER_LIMIT_MAX = 1000


async def create_sale(request: web.Request) -> web.Response:
    body = await decode_body(request, CreateSaleRequest)
    if body.ends_at <= body.starts_at:
        raise ProblemError(ProblemCode.INVALID_REQUEST, "ends_at: must be after starts_at")
    if body.shards > 1:
        if body.stock < body.shards:
            raise ProblemError(ProblemCode.INVALID_REQUEST, "shards: more than the stock")
        if body.holds_per_address is not None or (body.waiting_room and body.waiting_room.enabled):
            raise ProblemError(
                ProblemCode.INVALID_REQUEST,
                "shards: not available with holds_per_address or a waiting room",
            )
    sale_id = body.sale_id if body.sale_id is not UNSET else new_sale_id()
    created = await request.app[STORE].create_sale(sale_id, body.new_sale())
    return respond(
        request,
        created_sale_view(_or_problem(created)),
        status=201,
        headers={"Location": f"/v1/sales/{sale_id}"},
    )


async def list_sales(request: web.Request) -> web.Response:
    sales = await request.app[STORE].list_sales()
    return respond(request, SaleList(sales=[admin_sale_view(s) for s in sales]))


async def get_sale(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    sale = await request.app[STORE].get_sale(sale_id)
    if sale is None:
        raise ProblemError(ProblemCode.NOT_FOUND, f"no sale with id {sale_id!r}")
    return respond(request, admin_sale_view(sale))


async def patch_sale(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    body = await decode_body(request, PatchSaleRequest)
    if body.is_empty():
        raise ProblemError(
            ProblemCode.INVALID_REQUEST,
            "the body names no change: send add_stock, starts_at, ends_at, paused, "
            "per_user_limit or holds_per_address",
        )
    key = idempotency_key(request)
    patched = await request.app[STORE].patch_sale(
        sale_id, body.change(), idempotency_key=key, fingerprint=fingerprint(body) if key else ""
    )
    return respond(request, admin_sale_view(_or_problem(patched)))


async def end_sale(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    ended = await request.app[STORE].end_sale(sale_id)
    return respond(request, admin_sale_view(_or_problem(ended)))


async def dead_letters(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= DEAD_LETTER_LIMIT_MAX:
        raise ProblemError(
            ProblemCode.INVALID_REQUEST,
            f"limit: must be an integer from 1 to {DEAD_LETTER_LIMIT_MAX}",
        )
    letters = await request.app[STORE].dead_letters.newest(int(raw))
    return respond(request, DeadLetterList(dead_letters=letters))


def _or_problem(result: SaleRecord | Rejected) -> SaleRecord:
    if isinstance(result, Rejected):
        raise rejection_problem(result)
    return result
