"""Builds the aiohttp application: the route table, the middlewares, and the resources the
handlers share (opened when the app starts, closed when it stops)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from flashsale.admission.gate import Admission
from flashsale.admission.soldout import listen_for_stock_back
from flashsale.api.context import (
    ADMISSION,
    LIVE,
    METRICS,
    OPENAPI,
    PURCHASES,
    REDIS,
    ROOMS,
    SCRIPTS,
    SETTINGS,
    STORE,
)
from flashsale.api.live.feeds import LiveFeeds
from flashsale.api.middleware import front, gate
from flashsale.api.openapi import openapi_document
from flashsale.api.routes import ROUTES, add_routes
from flashsale.errors import ConfigError
from flashsale.metrics import Metrics
from flashsale.pause import pause
from flashsale.purchases import Purchases
from flashsale.room.rooms import Rooms
from flashsale.room.signing import Signer
from flashsale.settings import Settings
from flashsale.store.batcher import PurchaseBatcher
from flashsale.store.breaker import CircuitBreaker
from flashsale.store.client import connect
from flashsale.store.replicas import ReplicaWait
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts


def create_app(settings: Settings, metrics: Metrics | None = None) -> web.Application:
    if not settings.admin.token:
        raise ConfigError("no admin token: set FLASHSALE_ADMIN_TOKEN (there is no default)")
    if not settings.redis.url:
        raise ConfigError("no Redis URL: set FLASHSALE_REDIS_URL or run the embedded Redis")
    if not settings.queue.signing_key:
        raise ConfigError(
            "no waiting-room signing key: set FLASHSALE_QUEUE_SIGNING_KEY (serve makes one)"
        )
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[front, gate(settings.admin.token)],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics()
    app[ADMISSION] = Admission(settings, app[METRICS])
    app[OPENAPI] = openapi_document(ROUTES)
    app.cleanup_ctx.append(_redis_store)
    # Live streams never end on their own: ended first, so that stopping waits for none.
    app.on_shutdown.append(lambda app: app[LIVE].close())
    add_routes(app.router)
    return app


async def _redis_store(app: web.Application) -> AsyncIterator[None]:
    settings, metrics, admission = app[SETTINGS], app[METRICS], app[ADMISSION]
    redis = app[REDIS] = await connect(settings)
    wait = ReplicaWait(settings.redis.wait_replicas, settings.redis.wait_timeout_ms)
    scripts = app[SCRIPTS] = Scripts.register(redis, observe=metrics.observe_script, wait=wait)
    breaker = CircuitBreaker(
        settings.breaker.failure_threshold,
        settings.breaker.open_seconds,
        on_change=lambda state: metrics.breaker_state.set(state.value),
    )
    store = app[STORE] = SaleStore(
        redis,
        scripts,
        idempotency_ttl_seconds=settings.purchases.idempotency_ttl_seconds,
        max_backlog=settings.orders.max_backlog,
        breaker=breaker,
    )
    batcher = None
    if settings.batching.enabled:
        batcher = PurchaseBatcher.from_settings(
            store.purchase_batch,
            settings,
            on_batch=metrics.batch_size.observe,
            on_dropped=lambda count: metrics.shed.labels("deadline").inc(count),
        )
        store.use_batcher(batcher)
    purchases = app[PURCHASES] = Purchases(store, admission, metrics)
    app[LIVE] = LiveFeeds(redis, store, metrics)
    rooms = app[ROOMS] = Rooms(
        redis, scripts, Signer(settings.queue.signing_key), settings.queue,
        overload_sheds=admission.take_overload_sheds,
    )  # fmt: skip
    stop = asyncio.Event()
    helpers = [
        asyncio.create_task(rooms.run(stop)),
        asyncio.create_task(listen_for_stock_back(redis, admission.sold_out, stop)),
        asyncio.create_task(admission.counts.run(scripts, stop)),
        asyncio.create_task(_sample_in_flight(admission, stop)),
        asyncio.create_task(purchases.pending.run(stop)),
    ]
    yield
    stop.set()
    await asyncio.gather(*helpers, return_exceptions=True)
    if batcher is not None:
        await batcher.close()
    await redis.aclose()


async def _sample_in_flight(admission: Admission, stop: asyncio.Event) -> None:
    """The in-flight gauge, sampled a few times a second rather than moved per request."""
    while not stop.is_set():
        admission.metrics.in_flight.set(admission.in_flight.current)
        admission.metrics.in_flight_limit.set(admission.in_flight.limit)
        await pause(0.25, stop)
