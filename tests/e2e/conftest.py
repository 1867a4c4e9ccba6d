"""A real `flashsale serve` process against the session's private Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ADMIN_TOKEN
from tests.servers import redis_server
from tests.service import Service, flashsale_service


@pytest.fixture(scope="session")
def service_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service's own Redis: its in-process worker consumes every sale's events, so it
    must not share a Redis with tests that run workers of their own."""
    with redis_server(Path(tmp_path_factory.mktemp("service-redis"))) as url:
        yield url


@pytest.fixture(scope="session")
def service(service_redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = {
        "FLASHSALE_REDIS_URL": service_redis_url,
        "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
        # Every test request comes from 127.0.0.1; rate limits have tests of their own.
        "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0",
        "FLASHSALE_ADMISSION_USER_RATE_PER_SECOND": "0",
        # The spike must reach the stock at full concurrency; shedding has tests of its own:
        # a fixed bound, and no refusing by queueing delay (2,000 requests at once queue).
        "FLASHSALE_ADMISSION_MAX_IN_FLIGHT": "4096",
        "FLASHSALE_ADMISSION_ADAPTIVE": "false",
        "FLASHSALE_ADMISSION_QUEUE_TARGET_MS": "60000",
        "FLASHSALE_SERVER_MAX_CONNECTIONS": "4096",
    }
    with flashsale_service(Path(tmp_path_factory.mktemp("serve")), env) as running:
        yield running
