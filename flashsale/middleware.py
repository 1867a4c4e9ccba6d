"""Cross-cutting request handling: request ids, operator auth, problem documents, metrics."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from flashsale.admission import retry_after_header
from flashsale.context import METRICS
from flashsale.errors import BreakerOpen, StoreUnavailable
from flashsale.problems import Problem, ProblemCode

log = logging.getLogger("flashsale.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_PREFIX = "/admin"
RETRY_AFTER_UNAVAILABLE = "1"


def admin_auth(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise Problem(
                    ProblemCode.UNAUTHORIZED,
                    "operator routes need 'Authorization: Bearer <admin token>'",
                    {"WWW-Authenticate": 'Bearer realm="flashsale-admin"'},
                )
        return await handler(request)

    return check_token


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns every failure into a problem document; nothing else answers non-2xx."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(request.path)
    except BreakerOpen as exc:
        request.app[METRICS].shed.labels("breaker_open").inc()
        return Problem(
            ProblemCode.OVERLOADED,
            "the engine's store is failing; retry later",
            {"Retry-After": retry_after_header(exc.retry_after)},
        ).response(request.path)
    except StoreUnavailable as exc:
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        request.app[METRICS].shed.labels("store_unavailable").inc()
        unavailable = Problem(
            ProblemCode.OVERLOADED,
            "the engine's store is unavailable; retry later",
            {"Retry-After": RETRY_AFTER_UNAVAILABLE},
        )
        return unavailable.response(request.path)
    except web.HTTPException as exc:
        return _http_exception_problem(exc).response(request.path)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return Problem(ProblemCode.INTERNAL_ERROR, "an unexpected error occurred").response(
            request.path
        )


def _http_exception_problem(exc: web.HTTPException) -> Problem:
    if exc.status == 413:
        return Problem(ProblemCode.PAYLOAD_TOO_LARGE, "the request body exceeds the size limit")
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return Problem(
            ProblemCode.INVALID_REQUEST,
            f"method not allowed here; allowed: {allowed}",
            {"Allow": allowed},
            status=405,
        )
    if exc.status == 404:
        return Problem(ProblemCode.NOT_FOUND, "no such route")
    return Problem(ProblemCode.INVALID_REQUEST, exc.reason, status=exc.status)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Gives each request an id (the caller's X-Request-Id if sane) and records metrics."""
    request_id = request.headers.get("X-Request-Id", "")
    if not (0 < len(request_id) <= 128 and request_id.isascii() and request_id.isprintable()):
        request_id = uuid.uuid4().hex
    started = time.perf_counter()
    response = await handler(request)
    response.headers["X-Request-Id"] = request_id
    route = request.match_info.route.resource
    template = route.canonical if route is not None else "unmatched"
    metrics = request.app[METRICS]
    metrics.http_requests.labels(template, request.method, str(response.status)).inc()
    metrics.http_seconds.labels(template).observe(time.perf_counter() - started)
    if response.status >= 500:
        log.warning(
            "%s %s -> %d request_id=%s", request.method, request.path, response.status, request_id
        )
    return response
