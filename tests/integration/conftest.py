"""Fixtures for tests against the private Redis: settings, store, and the app over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from flashsale.api.app import create_app
from flashsale.settings import Settings, load_settings
from flashsale.sinks import OrderSink, open_sink
from flashsale.store.batcher import PurchaseBatcher
from flashsale.store.client import connect_single
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from tests.helpers import ADMIN, ADMIN_TOKEN, sale_body
from tests.servers import PostgresServer, redis_cluster, redis_server

CreateSale = Callable[..., Awaitable[dict[str, Any]]]
Client = TestClient[Any, Any]


@pytest.fixture(scope="session", params=["batched", "unbatched"])
def settings(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Every integration test runs twice: purchases grouped into batch calls, and one call
    per purchase. The outcomes must not differ."""
    return load_settings(
        env={},
        overrides={
            "batching_enabled": request.param == "batched",
            "redis_url": redis_url,
            "admin_token": ADMIN_TOKEN,
            "queue_signing_key": "test-queue-signing-key-not-secret",
            "server_data_dir": str(Path(tmp_path_factory.mktemp("data"))),
            # Tests run their own workers; one in the app would race them for every event.
            "worker_in_process": False,
            # Every test request comes from 127.0.0.1 and user names repeat across tests;
            # rate limits have tests of their own.
            "admission_ip_rate_per_second": 0.0,
            "admission_user_rate_per_second": 0.0,
        },
    )


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = connect_single(settings)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def store(redis: Redis, settings: Settings) -> AsyncIterator[SaleStore]:
    built = SaleStore(redis, Scripts.register(redis), settings.purchases.idempotency_ttl_seconds)
    batcher = None
    if settings.batching.enabled:
        batcher = PurchaseBatcher.from_settings(built.purchase_batch, settings)
        built.use_batcher(batcher)
    yield built
    if batcher is not None:
        await batcher.close()


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


@asynccontextmanager
async def room_app(settings: Settings, poll_after: float, tick: float) -> AsyncIterator[Client]:
    """The app over HTTP with its waiting rooms' clocks sped up for a test: waiters told to
    poll every `poll_after` seconds, rooms ticked and refreshed every `tick`."""
    quick = settings.replace(
        queue_poll_after_seconds=poll_after, queue_tick_seconds=tick, queue_refresh_seconds=tick
    )
    async with TestClient(TestServer(create_app(quick))) as client:
        yield client


@pytest.fixture
def create_sale(client: TestClient[Any, Any]) -> CreateSale:
    """Creates a sale through the admin API and returns its view."""

    async def create(**overrides: Any) -> dict[str, Any]:
        response = await client.post("/admin/sales", json=sale_body(**overrides), headers=ADMIN)
        assert response.status == 201, await response.text()
        created: dict[str, Any] = await response.json()
        return created

    return create


@pytest.fixture(scope="session")
def cluster_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """A private Redis Cluster for the session (3 primaries, 3 replicas): its nodes' URLs."""
    with redis_cluster(Path(tmp_path_factory.mktemp("cluster"))) as cluster:
        yield cluster.urls


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of the test's own, for faults that must not reach the shared one
    (a stall, a proxy, a restart, ten thousand sales)."""
    with redis_server(tmp_path / "redis") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def order_store_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty order store: a SQLite file, or a new database on the private PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'orders.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    yield await server.new_database("orders")


@pytest.fixture
async def sink(order_store_dsn: str, tmp_path: Path) -> AsyncIterator[OrderSink]:
    opened = open_sink(order_store_dsn, tmp_path)
    yield opened
    await opened.close()
