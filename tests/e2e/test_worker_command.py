"""`flashsale worker`: a separate process beside `serve --no-worker`, in burst and daemon form."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
import redis

from flashsale import keys
from flashsale.sinks import SQLITE_FILE
from tests import sync_http as http
from tests.helpers import ADMIN, ADMIN_TOKEN, sale_body
from tests.polling import eventually_blocking
from tests.servers import redis_server
from tests.service import flashsale_command, flashsale_service

pytestmark = pytest.mark.slow


def stored_count(data_dir: Path) -> int:
    path = data_dir / SQLITE_FILE
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM orders").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_worker_burst_and_daemon_with_a_clean_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with redis_server(tmp_path / "redis") as redis_url:
        env = {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN}
        with flashsale_service(data_dir, env, "--no-worker") as service:
            body = sale_body(stock=50)
            assert http.post(service.url + "/admin/sales", body, ADMIN)[0] == 201
            purchases = f"{service.url}/v1/sales/{body['sale_id']}/purchases"
            for i in range(10):
                assert http.post(purchases, {"user_id": f"w{i}", "quantity": 1})[0] == 201
            assert stored_count(data_dir) == 0  # nobody hands them over: --no-worker

            worker_env = {**os.environ, **env}
            burst = subprocess.run(
                [flashsale_command(), "worker", "--burst", "--data-dir", str(data_dir)],
                env=worker_env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert burst.returncode == 0, burst.stderr
            assert "stored 10 events" in burst.stdout
            assert stored_count(data_dir) == 10

            daemon = subprocess.Popen(
                [flashsale_command(), "worker", "--data-dir", str(data_dir)],
                env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                for i in range(10, 25):
                    assert http.post(purchases, {"user_id": f"w{i}", "quantity": 1})[0] == 201
                eventually_blocking(
                    lambda: stored_count(data_dir) == 25,
                    within=15,
                    what="the worker to store them",
                    ignoring=(Exception,),
                )
                daemon.send_signal(signal.SIGTERM)
                assert daemon.wait(15) == 0
            finally:
                if daemon.poll() is None:
                    daemon.kill()
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            pending = client.xpending(keys.events(body["sale_id"]), keys.ORDER_STORE_GROUP)
            assert pending["pending"] == 0
        finally:
            client.close()
