"""Builds the aiohttp application: routes, middlewares, and the resources they share."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from flashsale.context import METRICS, SETTINGS, STORE
from flashsale.errors import ConfigError
from flashsale.handlers import admin, ops, shopper
from flashsale.metrics import Metrics
from flashsale.middleware import admin_auth, problems, request_context
from flashsale.redis_client import connect
from flashsale.scripts import Scripts
from flashsale.settings import Settings
from flashsale.store import SaleStore


def create_app(settings: Settings, metrics: Metrics | None = None) -> web.Application:
    if not settings.admin_token:
        raise ConfigError("no admin token: set FLASHSALE_ADMIN_TOKEN (there is no default)")
    if not settings.redis_url:
        raise ConfigError("no Redis URL: set FLASHSALE_REDIS_URL or run the embedded Redis")
    app = web.Application(
        client_max_size=settings.server_max_body_bytes,
        middlewares=[request_context, problems, admin_auth(settings.admin_token)],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics()
    app.cleanup_ctx.append(_redis_store)
    _add_routes(app.router)
    return app


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/sales/{sale_id}", shopper.get_sale)
    router.add_post("/v1/sales/{sale_id}/purchases", shopper.purchase)
    router.add_get("/v1/orders/{order_id}", shopper.get_order)
    router.add_get("/admin/sales", admin.list_sales)
    router.add_post("/admin/sales", admin.create_sale)
    router.add_get("/admin/sales/{sale_id}", admin.get_sale)
    router.add_patch("/admin/sales/{sale_id}", admin.patch_sale)
    router.add_post("/admin/sales/{sale_id}/end", admin.end_sale)
    router.add_get("/healthz", ops.healthz)
    router.add_get("/readyz", ops.readyz)
    router.add_get("/metrics", ops.metrics)
    router.add_get("/openapi.json", ops.openapi)


async def _redis_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = connect(settings)
    app[STORE] = SaleStore(
        redis,
        Scripts.register(redis),
        idempotency_ttl_seconds=settings.purchases_idempotency_ttl_seconds,
        observe_script=app[METRICS].observe_script,
    )
    yield
    await redis.aclose()
