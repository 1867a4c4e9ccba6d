"""The waiting room's routes: join a sale's queue, and poll it with the ticket."""

from __future__ import annotations

import re

from aiohttp import web

from flashsale.api.codec import decode_body, respond
from flashsale.api.context import ROOMS
from flashsale.api.params import path_id
from flashsale.api.problems import ProblemCode, ProblemError, rejection_problem
from flashsale.api.schemas import JoinQueueRequest, QueueView
from flashsale.room.rooms import NoSuchTicketError, QueueAnswer
from flashsale.store.outcomes import Rejected
from flashsale.timefmt import format_ms

# A user id, a dot, and a 22-character signature (flashsale/room/signing.py).
_TICKET = re.compile(r"[A-Za-z0-9_.:-]{1,64}\.[A-Za-z0-9_-]{22}")


async def join_queue(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    body = await decode_body(request, JoinQueueRequest)
    joined = await request.app[ROOMS].join(sale_id, body.user_id)
    if isinstance(joined, Rejected):
        raise rejection_problem(joined)
    answer, joined_now = joined
    headers = {"Location": f"/v1/sales/{sale_id}/queue/{answer.ticket}"}
    return respond(request, _view(answer), status=201 if joined_now else 200, headers=headers)


async def queue_status(request: web.Request) -> web.Response:
    sale_id = path_id(request, "sale_id")
    ticket = request.match_info["ticket"]
    if not _TICKET.fullmatch(ticket):
        raise _unknown_ticket()
    try:
        answer = await request.app[ROOMS].status(sale_id, ticket)
    except NoSuchTicketError:
        raise _unknown_ticket() from None
    return respond(request, _view(answer))


def _view(answer: QueueAnswer) -> QueueView:
    expires = answer.token_expires_at_ms
    return QueueView(
        ticket=answer.ticket,
        status=answer.status,
        position=answer.position,
        estimated_wait_seconds=answer.estimated_wait_seconds,
        poll_after_seconds=answer.poll_after_seconds,
        purchase_token=answer.purchase_token,
        token_expires_at=format_ms(expires) if expires is not None else None,
        places_drawn_at=(
            format_ms(answer.places_drawn_at_ms) if answer.places_drawn_at_ms is not None else None
        ),
    )


def _unknown_ticket() -> ProblemError:
    return ProblemError(ProblemCode.NOT_FOUND, "no such ticket in this sale's waiting room")
