"""Cross-cutting request handling: request ids, operator auth, problem documents, metrics."""

from __future__ import annotations

import hmac
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from flashsale.admission import retry_after_header
from flashsale.context import METRICS
from flashsale.errors import BreakerOpen, StoreUnavailable
from flashsale.logs import REQUEST_ID
from flashsale.problems import Problem, ProblemCode

log = logging.getLogger("flashsale.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_PREFIX = "/admin"
# Request ids: unique per process (random prefix) and cheap (a counter), not uuid4 per request.
_ID_PREFIX = os.urandom(4).hex() + "-"
_ID_COUNTER = itertools.count(1)
RETRY_AFTER_UNAVAILABLE = "1"


def admin_checker(token: str) -> Callable[[web.Request], None]:
    """Raises 401 unless the request carries the operator's bearer token."""
    expected = f"Bearer {token}".encode()

    def check(request: web.Request) -> None:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise Problem(
                ProblemCode.UNAUTHORIZED,
                "operator routes need 'Authorization: Bearer <admin token>'",
                {"WWW-Authenticate": 'Bearer realm="flashsale-admin"'},
            )

    return check


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


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
async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost layer: a request id (the caller's X-Request-Id if sane), every failure
    turned into a problem document (nothing else answers non-2xx), and the HTTP metrics."""
    request_id = request.headers.get("X-Request-Id", "")
    if not (0 < len(request_id) <= 128 and request_id.isascii() and request_id.isprintable()):
        request_id = f"{_ID_PREFIX}{next(_ID_COUNTER):x}"
    REQUEST_ID.set(request_id)  # each request runs in its own task: its own context
    started = time.perf_counter()
    try:
        response = await handler(request)
    except Problem as problem:
        response = problem.response(request.path)
    except BreakerOpen as exc:
        request.app[METRICS].shed.labels("breaker_open").inc()
        response = Problem(
            ProblemCode.OVERLOADED,
            "the engine's store is failing; retry later",
            {"Retry-After": retry_after_header(exc.retry_after)},
        ).response(request.path)
    except StoreUnavailable as exc:
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        request.app[METRICS].shed.labels("store_unavailable").inc()
        response = Problem(
            ProblemCode.OVERLOADED,
            "the engine's store is unavailable; retry later",
            {"Retry-After": RETRY_AFTER_UNAVAILABLE},
        ).response(request.path)
    except web.HTTPException as exc:
        response = _http_exception_problem(exc).response(request.path)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = Problem(ProblemCode.INTERNAL_ERROR, "an unexpected error occurred").response(
            request.path
        )
    response.headers["X-Request-Id"] = request_id
    route = request.match_info.route.resource
    template = route.canonical if route is not None else "unmatched"
    request.app[METRICS].observe_http(
        template, request.method, response.status, time.perf_counter() - started
    )
    return response
