"""`flashsale serve` with its own redis-server: durability, supervision, no orphans, token."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from flashsale.runtime.admin_token import TOKEN_FILE
from flashsale.runtime.embedded_redis import PASSWORD_FILE, RUNTIME_FILE
from flashsale.runtime.redis_server import free_port
from tests import sync_http as http
from tests.helpers import sale_body
from tests.polling import eventually_blocking
from tests.service import Service, flashsale_service, pid_alive, run_flashsale, wait_until_gone

pytestmark = pytest.mark.slow


def redis_pid(service: Service) -> int:
    return int(json.loads((service.data_dir / RUNTIME_FILE).read_text())["pid"])


def admin_headers(service: Service) -> dict[str, str]:
    token = (service.data_dir / TOKEN_FILE).read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def test_acknowledged_reservations_survive_redis_sigkill(tmp_path: Path) -> None:
    with flashsale_service(tmp_path / "data") as service:
        admin = admin_headers(service)
        body = sale_body(stock=50, per_user_limit=1)
        assert http.post(service.url + "/admin/sales", body, admin)[0] == 201
        acknowledged: list[dict[str, Any]] = []
        for i in range(30):
            status, answer = http.post(
                f"{service.url}/v1/sales/{body['sale_id']}/purchases",
                {"user_id": f"u{i}", "quantity": 1},
            )
            assert status == 201
            acknowledged.append(answer)

        old_pid = redis_pid(service)
        os.kill(old_pid, signal.SIGKILL)
        wait_until_gone(old_pid, "redis-server to die")
        eventually_blocking(
            lambda: http.get(service.url + "/readyz")[0] == 200 and redis_pid(service) != old_pid,
            within=30,
            what="the service to restart its redis-server and be ready",
            ignoring=(Exception,),
        )

        for answer in acknowledged:
            url = f"{service.url}/v1/orders/{answer['order_id']}"
            status, order = http.until_available(functools.partial(http.get, url))
            assert status == 200
            assert (order["user_id"], order["status"]) == (answer["user_id"], "reserved")
        sale_url = f"{service.url}/admin/sales/{body['sale_id']}"
        status, sale = http.until_available(lambda: http.get(sale_url, admin))
        assert (sale["stock_left"], sale["counts"]["reserved"]) == (20, 30)
        # And it keeps selling.
        purchases = f"{service.url}/v1/sales/{body['sale_id']}/purchases"
        status, _ = http.until_available(
            lambda: http.post(purchases, {"user_id": "late", "quantity": 1})
        )
        assert status == 201


def test_redis_never_outlives_a_killed_service(tmp_path: Path) -> None:
    with flashsale_service(tmp_path / "data") as service:
        child = redis_pid(service)
        service.process.kill()
        service.process.wait(10)
        wait_until_gone(child, "the orphaned redis-server to exit")


def test_sigterm_stops_service_and_redis_cleanly(tmp_path: Path) -> None:
    with flashsale_service(tmp_path / "data") as service:
        child = redis_pid(service)
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(20) == 0
        assert not pid_alive(child)
        assert not (service.data_dir / RUNTIME_FILE).exists()


def test_generated_admin_token_is_private_kept_and_never_printed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with flashsale_service(data) as service:
        token_file = data / TOKEN_FILE
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert str(token_file) in service.log()
        assert token not in service.log()
        assert http.get(service.url + "/admin/sales", admin_headers(service))[0] == 200
        assert http.get(service.url + "/admin/sales")[0] == 401
    with flashsale_service(data) as again:
        assert (data / TOKEN_FILE).read_text().strip() == token
        assert token not in again.log()


def test_missing_redis_server_says_how_to_install_it(tmp_path: Path) -> None:
    result = run_flashsale(
        "serve", "--port", "0", "--data-dir", str(tmp_path),
        env={"FLASHSALE_REDIS_SERVER_BINARY": "no-such-redis-server"},
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "apt-get install redis-server" in lines[0]


def test_invalid_setting_stops_startup_naming_it(tmp_path: Path) -> None:
    result = run_flashsale(
        "serve", "--data-dir", str(tmp_path), env={"FLASHSALE_REDIS_MAX_CONNECTIONS": "many"}
    )
    assert result.returncode == 2
    assert "FLASHSALE_REDIS_MAX_CONNECTIONS" in result.stderr


def test_serve_starts_without_its_redis_and_reports_not_ready(tmp_path: Path) -> None:
    env = {"FLASHSALE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with flashsale_service(tmp_path / "data", env) as service:
        assert http.get(service.url + "/healthz")[0] == 200
        status, problem = http.get(service.url + "/readyz")
        assert (status, problem["code"]) == (503, "overloaded")
        assert "not reachable" in service.log()


def test_a_second_service_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    with flashsale_service(tmp_path / "data") as first:
        second = run_flashsale("serve", "--port", "0", "--data-dir", str(first.data_dir))
        assert second.returncode == 2
        assert "already runs the Redis" in second.stderr
        assert http.get(first.url + "/readyz")[0] == 200


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_clear_line(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_flashsale(
            "serve", "--port", port, "--workers", workers, "--data-dir", str(tmp_path / "d")
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_one_without_the_password_reaches_the_embedded_redis(tmp_path: Path) -> None:
    with flashsale_service(tmp_path / "data") as service:
        runtime = service.data_dir / RUNTIME_FILE
        password_file = service.data_dir / "redis" / PASSWORD_FILE
        for private in (runtime, password_file, service.data_dir / "redis" / "redis.conf"):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
        assert stat.S_IMODE((service.data_dir / "redis").stat().st_mode) == 0o700
        url = json.loads(runtime.read_text())["url"]
        address = urlsplit(url)
        password = password_file.read_text().strip()
        assert address.password == password
        assert address.hostname == "127.0.0.1"

        stranger = redis.Redis(host="127.0.0.1", port=address.port, socket_timeout=5)
        with pytest.raises(redis.AuthenticationError):
            stranger.hset("fs:{launch}:sale", "stock_left", 1_000_000)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(
                host="127.0.0.1", port=address.port, password="guess", socket_timeout=5
            ).ping()
        stranger.close()
        owner = redis.Redis.from_url(url)
        maxmemory = owner.config_get("maxmemory")["maxmemory"]
        assert int(str(maxmemory)) >= 64 * 2**20
        owner.close()
    assert password not in service.log()
