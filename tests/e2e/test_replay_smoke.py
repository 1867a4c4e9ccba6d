"""A short launch-day replay against the real service, then the audit: the CI smoke of the
load-test tooling (seconds, a small sale)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests import sync_http as http
from tests.helpers import ADMIN, sale_body
from tests.polling import eventually_blocking
from tests.service import Service, run_flashsale

REPLAY = Path(__file__).resolve().parents[2] / "loadtest" / "replay.py"

pytestmark = pytest.mark.slow


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPLAY), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_synthetic_launch_day_replays_and_audits_clean(
    service: Service, service_redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "launch.jsonl"
    generated = replay(
        "generate", "--users", "600", "--quiet-seconds", "1", "--spike-seconds", "2",
        "--decay-seconds", "1", "--out", str(log),
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    arrivals = [json.loads(line) for line in log.read_text().splitlines()]
    assert [a["t"] for a in arrivals] == sorted(a["t"] for a in arrivals)
    assert {a["action"] for a in arrivals} == {"view", "buy"}

    body = sale_body(stock=50, per_user_limit=1, hold_seconds=600)
    assert http.post(service.url + "/admin/sales", body, ADMIN)[0] == 201
    orders = tmp_path / "orders.txt"
    replayed = replay(
        "run", "--log", str(log), "--url", service.url, "--sale", body["sale_id"],
        "--orders-out", str(orders),
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    assert "schedule:" in replayed.stdout
    accepted = set(orders.read_text().split())
    # 600 shoppers and bots for 50 units: all sold, and cancelled ones sold again.
    assert len(accepted) >= 50

    def stored() -> set[str]:
        path = service.data_dir / "orders.sqlite3"
        with sqlite3.connect(path) as db:
            return {row[0] for row in db.execute("SELECT order_id FROM orders")}

    eventually_blocking(
        lambda: accepted <= stored(),
        within=15,
        what="every 201 to reach the order store",
        ignoring=(Exception,),
    )

    audit = run_flashsale(
        "audit", "--sale", body["sale_id"],
        env={"FLASHSALE_REDIS_URL": service_redis_url,
             "FLASHSALE_ORDERS_DSN": f"sqlite:{service.data_dir / 'orders.sqlite3'}"},
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "audit clean" in audit.stdout
