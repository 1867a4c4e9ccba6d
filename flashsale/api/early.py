"""The refusal written below the app (api/protocol.py): a purchase that arrives while the
process is at its in-flight bound is answered 503 from its head alone.

The app would refuse it at admission anyway, after aiohttp had built a Request, run the
middlewares and rendered a Response - which, at ten times the capacity, is where a process's
time goes. The answer here is the same one: the same status, headers and problem document
(pre-encoded), counted the same way (shed `in_flight`, and in the sale's counts). Only
purchases are answered so; confirm and cancel have the bound's reserve and go the whole way.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE

from flashsale.admission.gate import AT_CAPACITY, OVERLOADED_RETRY_AFTER_SECONDS
from flashsale.admission.limits import Priority
from flashsale.api.context import ADMISSION
from flashsale.api.problems import (
    PROBLEM_CONTENT_TYPE,
    ProblemCode,
    ProblemError,
    retry_after_header,
)
from flashsale.api.protocol import EarlyRefusal
from flashsale.api.request_ids import new_request_id

_PREFIX, _SUFFIX = "/v1/sales/", "/purchases"
_AT_CAPACITY = ProblemError(
    ProblemCode.OVERLOADED,
    AT_CAPACITY,
    {"Retry-After": retry_after_header(OVERLOADED_RETRY_AFTER_SECONDS)},
)


def early_refusal(app: web.Application) -> EarlyRefusal:
    admission = app[ADMISSION]
    in_flight = admission.in_flight

    def refuse(method: str, target: str) -> bytes | None:
        if method != "POST" or not in_flight.full(Priority.NORMAL):
            return None
        if not (target.startswith(_PREFIX) and target.endswith(_SUFFIX)):
            return None  # another route, or a query string: the app decides
        sale_id = target[len(_PREFIX) : -len(_SUFFIX)]
        if not sale_id or "/" in sale_id or "%" in sale_id:
            return None
        admission.shed("in_flight", sale_id)
        return http_answer(_AT_CAPACITY, target)

    return refuse


def http_answer(problem: ProblemError, instance: str) -> bytes:
    """The whole HTTP/1.1 answer aiohttp would write for this problem document."""
    body = problem.body(instance)
    head = [
        f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}",
        f"Content-Type: {PROBLEM_CONTENT_TYPE}",
        *(f"{name}: {value}" for name, value in problem.headers.items()),
        f"X-Request-Id: {new_request_id()}",
        f"Content-Length: {len(body)}",
        f"Date: {rfc822_formatted_time()}",
        f"Server: {SERVER_SOFTWARE}",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
