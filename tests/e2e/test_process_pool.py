"""`serve --workers N`: processes share the port, metrics add up across them, and a process
that dies is replaced."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from tests import sync_http as http
from tests.helpers import ADMIN, ADMIN_TOKEN, sale_body
from tests.polling import eventually_blocking
from tests.servers import redis_server
from tests.service import flashsale_service, wait_until_gone

pytestmark = pytest.mark.slow


def children_of(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if re.search(rf"^PPid:\s+{pid}$", text, flags=re.M) and "spawn_main" in (
            (status.parent / "cmdline").read_bytes().decode(errors="replace")
        ):
            found.add(int(status.parent.name))
    return found


def metric_sum(text: str, name: str, labels: str) -> float:
    pattern = rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$"
    return sum(float(m) for m in re.findall(pattern, text, flags=re.M))


def worker_gauges(text: str) -> tuple[float | None, ...]:
    def value(name: str) -> float | None:
        found = re.findall(rf"^{re.escape(name)} (\S+)$", text, flags=re.M)
        return float(found[0]) if len(found) == 1 else None

    return value("flashsale_order_store_up"), value("flashsale_redis_durable")


async def test_processes_share_the_port_and_their_metrics(tmp_path: Path) -> None:
    # Persisting as the engine needs, so that flashsale_redis_durable has a 1 to report.
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with redis_server(tmp_path / "redis", *durable) as redis_url:
        env = {
            "FLASHSALE_REDIS_URL": redis_url,
            "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
            "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0",
            # 300 purchases at once must all be served (metrics are what is counted here).
            "FLASHSALE_ADMISSION_ADAPTIVE": "false",
            "FLASHSALE_ADMISSION_QUEUE_TARGET_MS": "60000",
        }
        with flashsale_service(tmp_path / "data", env, "--workers", "2") as service:
            eventually_blocking(
                lambda: len(children_of(service.process.pid)) == 2,
                within=10,
                what="two processes",
                ignoring=(Exception,),
            )
            children = children_of(service.process.pid)
            body = sale_body(stock=1000, per_user_limit=1)
            assert http.post(service.url + "/admin/sales", body, ADMIN)[0] == 201
            connector = aiohttp.TCPConnector(limit=0, force_close=True)  # new connection each
            async with aiohttp.ClientSession(service.url, connector=connector) as client:

                async def buy(i: int) -> int:
                    async with client.post(
                        f"/v1/sales/{body['sale_id']}/purchases",
                        json={"user_id": f"mp-{i}", "quantity": 1},
                    ) as response:
                        return response.status

                statuses = await asyncio.gather(*(buy(i) for i in range(300)))
            assert statuses.count(201) == 300
            text = http.get(service.url + "/metrics")[1]
            assert metric_sum(text, "flashsale_purchase_attempts_total", 'outcome="ok"') == 300
            route = 'method="POST",route="/v1/sales/{sale_id}/purchases",status="201"'
            assert metric_sum(text, "flashsale_http_requests_total", route) == 300
            # Gauges only the order worker's process sets report its reading, not the 0 the
            # other process holds for them (that 0 would page "order store down").
            eventually_blocking(
                lambda: worker_gauges(http.get(service.url + "/metrics")[1]) == (1.0, 1.0),
                within=30,
                what="order_store_up and redis_durable at 1 with two processes",
            )

            victim = min(children)
            os.kill(victim, signal.SIGKILL)
            wait_until_gone(victim, "the killed process to go")
            eventually_blocking(
                lambda: len(children_of(service.process.pid) - {victim}) == 2,
                within=15,
                what="the parent to start a replacement",
                ignoring=(Exception,),
            )
            assert http.get(service.url + "/readyz")[0] == 200
            # The replacement serves: with the other original gone too, only replacements are
            # left to answer (a replacement that cannot start would leave nobody).
            [survivor] = children - {victim}
            os.kill(survivor, signal.SIGKILL)
            wait_until_gone(survivor, "the second killed process to go")
            eventually_blocking(
                lambda: http.get(service.url + "/readyz")[0] == 200,
                within=30,
                what="a replacement to answer",
                ignoring=(Exception,),
            )
            assert "exited (code 1)" not in service.log(), service.log()[-3000:]
