"""Builds the aiohttp application: routes, middlewares, and the resources they share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from flashsale.batcher import PurchaseBatcher
from flashsale.breaker import CircuitBreaker
from flashsale.context import METRICS, REDIS, SCRIPTS, SETTINGS, STORE
from flashsale.errors import ConfigError
from flashsale.handlers import admin, ops, shopper
from flashsale.metrics import Metrics
from flashsale.middleware import front
from flashsale.pause import pause
from flashsale.redis_client import connect
from flashsale.scripts import Scripts
from flashsale.settings import Settings
from flashsale.shedding import ADMISSION, Admission, gate
from flashsale.sinks import open_sink
from flashsale.soldout import listen_for_stock_back
from flashsale.store import SaleStore
from flashsale.worker import Worker

log = logging.getLogger("flashsale.app")


def create_app(settings: Settings, metrics: Metrics | None = None) -> web.Application:
    if not settings.admin_token:
        raise ConfigError("no admin token: set FLASHSALE_ADMIN_TOKEN (there is no default)")
    if not settings.redis_url:
        raise ConfigError("no Redis URL: set FLASHSALE_REDIS_URL or run the embedded Redis")
    app = web.Application(
        client_max_size=settings.server_max_body_bytes,
        middlewares=[front, gate(settings.admin_token)],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics()
    app[ADMISSION] = Admission(settings, app[METRICS])
    app.cleanup_ctx.append(_redis_store)
    if settings.worker_in_process:
        app.cleanup_ctx.append(_background_worker)
    _add_routes(app.router)
    return app


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/sales/{sale_id}", shopper.get_sale)
    router.add_post("/v1/sales/{sale_id}/purchases", shopper.purchase)
    router.add_get("/v1/orders/{order_id}", shopper.get_order)
    router.add_post("/v1/orders/{order_id}/confirm", shopper.confirm_order)
    router.add_post("/v1/orders/{order_id}/cancel", shopper.cancel_order)
    router.add_get("/admin/sales", admin.list_sales)
    router.add_post("/admin/sales", admin.create_sale)
    router.add_get("/admin/sales/{sale_id}", admin.get_sale)
    router.add_patch("/admin/sales/{sale_id}", admin.patch_sale)
    router.add_post("/admin/sales/{sale_id}/end", admin.end_sale)
    router.add_get("/admin/dead-letters", admin.dead_letters)
    router.add_get("/healthz", ops.healthz)
    router.add_get("/readyz", ops.readyz)
    router.add_get("/metrics", ops.metrics)
    router.add_get("/openapi.json", ops.openapi)


async def _redis_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    metrics = app[METRICS]
    redis = app[REDIS] = connect(settings)
    scripts = app[SCRIPTS] = Scripts.register(redis)
    breaker = CircuitBreaker(
        settings.breaker_failure_threshold,
        settings.breaker_open_seconds,
        on_change=lambda state: metrics.breaker_state.set(state.value),
    )
    store = app[STORE] = SaleStore(
        redis,
        scripts,
        idempotency_ttl_seconds=settings.purchases_idempotency_ttl_seconds,
        observe_script=metrics.observe_script,
        max_backlog=settings.orders_max_backlog,
        breaker=breaker,
    )
    batcher = None
    if settings.batching_enabled:
        batcher = PurchaseBatcher.from_settings(
            store.purchase_batch,
            settings,
            on_batch=metrics.batch_size.observe,
            on_dropped=lambda count: metrics.shed.labels("deadline").inc(count),
        )
        store.use_batcher(batcher)
    admission = app[ADMISSION]
    stop = asyncio.Event()
    helpers = [
        asyncio.create_task(listen_for_stock_back(redis, admission.sold_out, stop)),
        asyncio.create_task(admission.counts.run(scripts, stop)),
        asyncio.create_task(_sample_in_flight(admission, stop)),
    ]
    yield
    stop.set()
    await asyncio.gather(*helpers, return_exceptions=True)
    if batcher is not None:
        await batcher.close()
    await redis.aclose()


async def _background_worker(app: web.Application) -> AsyncIterator[None]:
    """The order-queue worker and hold sweeper, run beside the HTTP service."""
    settings = app[SETTINGS]
    sink = open_sink(settings.orders_dsn, settings.data_dir)
    worker = Worker(app[REDIS], app[SCRIPTS], sink, settings, app[METRICS])
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="order-worker")
    log.info("order worker running in-process, writing to %s", sink.description)
    yield
    stop.set()  # the batch in hand is stored and acknowledged before the task returns
    try:
        await asyncio.wait_for(task, settings.server_shutdown_timeout_seconds)
    except TimeoutError:
        log.warning("order worker did not finish its batch in time; it stays pending")
    await sink.close()


async def _sample_in_flight(admission: Admission, stop: asyncio.Event) -> None:
    """The in-flight gauge, sampled a few times a second rather than moved per request."""
    while not stop.is_set():
        admission.metrics.in_flight.set(admission.in_flight.current)
        await pause(0.25, stop)
