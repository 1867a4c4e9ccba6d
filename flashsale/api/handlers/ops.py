"""Operations routes: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from flashsale.api.context import METRICS, OPENAPI, STORE
from flashsale.api.problems import ProblemCode, ProblemError
from flashsale.errors import StoreUnavailableError
from flashsale.metrics import EXPOSITION_CONTENT_TYPE


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        redis_time = await request.app[STORE].probe()
    except StoreUnavailableError as exc:
        raise ProblemError(
            ProblemCode.OVERLOADED, f"Redis is not answering: {exc}", {"Retry-After": "1"}
        ) from exc
    return web.json_response({"status": "ready", "redis_time_ms": redis_time})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    response = web.Response(body=body)
    # Set whole: aiohttp's content_type argument refuses the exposition's version parameter.
    response.headers["Content-Type"] = EXPOSITION_CONTENT_TYPE
    return response


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])
