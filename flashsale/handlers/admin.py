"""Operator routes: schedule, inspect, change and end sales (bearer token checked upstream)."""

from __future__ import annotations

from aiohttp import web
from msgspec import UNSET

from flashsale.codec import decode_body, respond
from flashsale.context import STORE
from flashsale.handlers.params import path_id
from flashsale.handlers.shopper import rejection_problem
from flashsale.ids import new_sale_id
from flashsale.models import (
    CreateSaleRequest,
    DeadLetterList,
    PatchSaleRequest,
    SaleList,
    SaleRecord,
    admin_sale_view,
    sale_view,
)
from flashsale.outcomes import Rejected
from flashsale.problems import Problem, ProblemCode
from flashsale.timefmt import to_ms


async def create_sale(request: web.Request) -> web.Response:
    body = await decode_body(request, CreateSaleRequest)
    if body.ends_at <= body.starts_at:
        raise Problem(ProblemCode.INVALID_REQUEST, "ends_at: must be after starts_at")
    sale_id = body.sale_id if body.sale_id is not UNSET else new_sale_id()
    created = await request.app[STORE].create_sale(body, sale_id)
    sale = _or_problem(created)
    return respond(
        request, sale_view(sale), status=201, headers={"Location": f"/v1/sales/{sale_id}"}
    )


async def list_sales(request: web.Request) -> web.Response:
    sales = await request.app[STORE].list_sales()
    return respond(request, SaleList(sales=[admin_sale_view(s) for s in sales]))


async def get_sale(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    sale = await request.app[STORE].get_sale(sale_id)
    if sale is None:
        raise Problem(ProblemCode.NOT_FOUND, f"no sale with id {sale_id!r}")
    return respond(request, admin_sale_view(sale))


async def patch_sale(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    body = await decode_body(request, PatchSaleRequest)
    if all(getattr(body, name) is UNSET for name in body.__struct_fields__):
        raise Problem(
            ProblemCode.INVALID_REQUEST,
            "the body names no change: send add_stock, starts_at, ends_at, paused "
            "or per_user_limit",
        )
    patched = await request.app[STORE].patch_sale(
        sale_id,
        add_stock=None if body.add_stock is UNSET else body.add_stock,
        starts_at=None if body.starts_at is UNSET else to_ms(body.starts_at),
        ends_at=None if body.ends_at is UNSET else to_ms(body.ends_at),
        paused=None if body.paused is UNSET else body.paused,
        per_user_limit=None if body.per_user_limit is UNSET else body.per_user_limit,
    )
    return respond(request, admin_sale_view(_or_problem(patched)))


async def end_sale(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    ended = await request.app[STORE].end_sale(sale_id)
    return respond(request, admin_sale_view(_or_problem(ended)))


DEAD_LETTER_LIMIT_MAX = 1000


async def dead_letters(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= DEAD_LETTER_LIMIT_MAX:
        raise Problem(
            ProblemCode.INVALID_REQUEST,
            f"limit: must be an integer from 1 to {DEAD_LETTER_LIMIT_MAX}",
        )
    letters = await request.app[STORE].dead_letters(int(raw))
    return respond(request, DeadLetterList(dead_letters=letters))


def _or_problem(result: SaleRecord | Rejected) -> SaleRecord:
    if isinstance(result, Rejected):
        raise rejection_problem(result)
    return result
