"""A real `flashsale serve` process against the session's private Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ADMIN_TOKEN
from tests.servers import Service, flashsale_service


@pytest.fixture(scope="session")
def service(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN}
    with flashsale_service(Path(tmp_path_factory.mktemp("serve")), env) as running:
        yield running
