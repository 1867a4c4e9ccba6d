"""Schemathesis against the running engine's /openapi.json: the examples, coverage, fuzzing
and stateful phases (sale -> purchase -> order -> confirm/cancel, by the document's links),
every check, JSON and msgpack both ways - and not one failure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ADMIN_TOKEN
from tests.service import Service, flashsale_service

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Service]:
    """`flashsale serve` with its own Redis; rate limits off (the run is one client)."""
    env = {
        "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
        "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0",
        "FLASHSALE_ADMISSION_USER_RATE_PER_SECOND": "0",
    }
    with flashsale_service(tmp_path / "data", env) as running:
        yield running


def test_the_engine_keeps_its_openapi_contract(engine: Service, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    env = {
        **os.environ,
        "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PYTHONPATH": str(ROOT),  # the hooks module, tests.contract.hooks
        "NO_COLOR": "1",
    }
    run = subprocess.run(
        [
            str(st), "--config-file", str(CONFIG), "run", f"{engine.url}/openapi.json",
            "--workers", "1", "--max-examples", "100", "--generation-database", "none",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in report, f"the {phase} phase did not pass:\n{report[-5_000:]}"
    # The links led the stateful phase through real purchases to the order routes.
    with urllib.request.urlopen(f"{engine.url}/metrics", timeout=10) as response:  # noqa: S310
        metrics = response.read().decode()
    assert 'flashsale_purchase_attempts_total{outcome="ok"}' in metrics
    assert re.search(r'route="/v1/orders/\{order_id\}(/cancel)?",status="200"', metrics)
