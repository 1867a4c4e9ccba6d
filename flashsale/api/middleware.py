"""Cross-cutting request handling, in two layers: `front` (request ids, every failure as a
problem document, HTTP metrics) and, inside it, `gate` (admission for shopper routes, the
bearer token for operator routes), each chosen from the route table."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Middleware

from flashsale.api.context import ADMISSION, ARRIVED, CLIENT, DEADLINE, METRICS, SETTINGS
from flashsale.api.problems import ProblemCode, ProblemError, retry_after_header
from flashsale.api.protocol import arrival_of
from flashsale.api.request_ids import new_request_id
from flashsale.api.routes import Audience, Handler, Route, audience_of, route_of
from flashsale.errors import (
    BreakerOpenError,
    RateLimitedError,
    RefusedError,
    StoreUnavailableError,
)
from flashsale.logs import REQUEST_ID

log = logging.getLogger("flashsale.http")

RETRY_AFTER_UNAVAILABLE = "1"


@web.middleware
async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost layer: a request id (the caller's X-Request-Id if sane), every failure
    turned into a problem document (nothing else answers non-2xx), and the HTTP metrics -
    except for refusals, which their own counter counts (flashsale_shed_total,
    flashsale_sold_out_local_total), as it does those refused below the app."""
    request_id = request.headers.get("X-Request-Id", "")
    if not (0 < len(request_id) <= 128 and request_id.isascii() and request_id.isprintable()):
        request_id = new_request_id()
    REQUEST_ID.set(request_id)  # each request runs in its own task: its own context
    arrived = arrival_of(request)
    request[ARRIVED] = arrived if arrived is not None else asyncio.get_running_loop().time()
    started = time.perf_counter()
    counted = False
    try:
        response = await handler(request)
    except Exception as exc:
        problem = _problem_for(request, exc)
        response, counted = problem.response(request.path), problem.counted
    response.headers["X-Request-Id"] = request_id
    if counted:  # a refusal: its own counter has it, once
        return response
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else "unmatched"
    request.app[METRICS].observe_http(
        template, request.method, response.status, time.perf_counter() - started
    )
    return response


def _problem_for(request: web.Request, exc: Exception) -> ProblemError:
    if isinstance(exc, ProblemError):
        return exc
    if isinstance(exc, RefusedError):
        limited = isinstance(exc, RateLimitedError)
        code = ProblemCode.RATE_LIMITED if limited else ProblemCode.OVERLOADED
        headers = {"Retry-After": retry_after_header(exc.retry_after)}
        return ProblemError(code, exc.detail, headers, counted=True)
    if isinstance(exc, BreakerOpenError):
        _count_shed(request, "breaker_open")
        return ProblemError(
            ProblemCode.OVERLOADED,
            "the engine's store is failing; retry later",
            {"Retry-After": retry_after_header(exc.retry_after)},
            counted=True,
        )
    if isinstance(exc, StoreUnavailableError):
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        _count_shed(request, "store_unavailable")
        return ProblemError(
            ProblemCode.OVERLOADED,
            "the engine's store is unavailable; retry later",
            {"Retry-After": RETRY_AFTER_UNAVAILABLE},
            counted=True,
        )
    if isinstance(exc, web.HTTPException):
        return _http_exception_problem(exc)
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return ProblemError(ProblemCode.INTERNAL_ERROR, "an unexpected error occurred")


def _count_shed(request: web.Request, reason: str) -> None:
    """A refusal for the engine's store: counted, and for a purchase in its sale's counts."""
    route = route_of(request)
    sale_id = request.match_info.get("sale_id") if route and route.takes_stock else None
    request.app[ADMISSION].shed(reason, sale_id)


def _http_exception_problem(exc: web.HTTPException) -> ProblemError:
    if exc.status == 413:
        return ProblemError(
            ProblemCode.PAYLOAD_TOO_LARGE, "the request body exceeds the size limit"
        )
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return ProblemError(
            ProblemCode.INVALID_REQUEST,
            f"method not allowed here; allowed: {allowed}",
            {"Allow": allowed},
            status=405,
        )
    if exc.status == 404:
        return ProblemError(ProblemCode.NOT_FOUND, "no such route")
    return ProblemError(ProblemCode.INVALID_REQUEST, exc.reason, status=exc.status)


def gate(admin_token: str) -> Middleware:
    """The one middleware inside `front`: shopper routes pass admission, operator routes
    the token check, operations routes go straight through."""
    expected = f"Bearer {admin_token}".encode()

    @web.middleware
    async def gate_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        audience = audience_of(request, route)
        if audience is Audience.OPERATIONS:
            return await handler(request)
        if audience is Audience.SHOPPER:
            return await _admit(request, handler, route)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise ProblemError(
                ProblemCode.UNAUTHORIZED,
                "operator routes need 'Authorization: Bearer <admin token>'",
                {"WWW-Authenticate": 'Bearer realm="flashsale-admin"'},
            )
        return await handler(request)

    return gate_request


async def _admit(request: web.Request, handler: Handler, route: Route | None) -> web.StreamResponse:
    """Admission, cheapest refusals first and nothing of the body parsed before them: the
    request's age, the client's rate, its body's arrival (awaited outside the in-flight
    bound, so a slow sender holds no slot), then an in-flight slot."""
    admission = request.app[ADMISSION]
    takes_stock = route is not None and route.takes_stock
    finishing = route is not None and route.finishes_purchase
    purchase_of = request.match_info.get("sale_id") if takes_stock else None
    loop = asyncio.get_running_loop()
    arrived, now = request[ARRIVED], loop.time()
    admission.check_age(now - arrived, now, purchase_of)
    request[CLIENT] = client = admission.client(
        request.remote, request.headers.get("X-Forwarded-For")
    )
    admission.check_client(client, finishing=finishing, purchase_of=purchase_of)
    if request.body_exists and not request.content.is_eof():
        await _await_body(request)  # only a body still on its way needs a timer
    in_flight = admission.enter(finishing=finishing, purchase_of=purchase_of)
    # The deadline counts from the head's arrival; the purchase service arms it around the
    # work that waits on Redis.
    request[DEADLINE] = deadline = arrived + admission.deadline_seconds
    started = loop.time()
    try:
        return await handler(request)
    except TimeoutError:
        if loop.time() < deadline:
            raise
        admission.shed("deadline", purchase_of)
        raise admission.overloaded(
            "deadline", "no answer within the request deadline; retry shortly"
        ) from None
    finally:
        now = loop.time()
        admission.leave(now - started, in_flight, now)


async def _await_body(request: web.Request) -> None:
    """Reads the body (kept by aiohttp for the handler) within the body timeout; a body that
    does not come in time is refused and its connection closed."""
    timeout = request.app[SETTINGS].server.body_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            await request.read()
    except TimeoutError:
        raise ProblemError(
            ProblemCode.INVALID_REQUEST,
            f"the request body did not arrive within {timeout:g} s",
            {"Connection": "close"},
        ) from None
