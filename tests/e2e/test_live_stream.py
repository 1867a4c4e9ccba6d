"""`serve --workers 2`: the live stream is the whole engine's, whichever process serves it.
Purchases and refusals land on both processes; every watcher, on either process, sees all
of them - in the units, the shed counts by reason and the latency histogram."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import sync_http as http
from tests.e2e.test_process_pool import children_of, metric_sum
from tests.helpers import ADMIN, sale_body
from tests.polling import eventually_blocking
from tests.service import GREEDY_SHOPPERS_SHED, service_with_own_redis
from tests.sse import events

pytestmark = pytest.mark.slow

BUYERS = 200
GREEDY_TRIES = 60


async def test_every_watcher_sees_both_processes_work(tmp_path: Path) -> None:
    # The greedy user is shed by whichever process it reaches; nothing else is.
    env = {
        **GREEDY_SHOPPERS_SHED,
        "FLASHSALE_ADMISSION_ADAPTIVE": "false",
        "FLASHSALE_ADMISSION_QUEUE_TARGET_MS": "60000",
    }
    with service_with_own_redis(tmp_path, env, "--workers", "2") as service:
        eventually_blocking(
            lambda: len(children_of(service.process.pid)) == 2,
            within=10,
            what="two processes",
            ignoring=(Exception,),
        )
        body = sale_body(stock=1000, per_user_limit=1)
        sale_id = body["sale_id"]
        assert http.post(service.url + "/admin/sales", body, ADMIN)[0] == 201
        finals = await watch_while_buying(service.url, sale_id)
        metrics = http.get(service.url + "/metrics")[1]
    shed = metric_sum(metrics, "flashsale_shed_total", 'reason="rate_limited_user"')
    assert shed > 0
    for final in finals:  # one per watcher, each on its own connection
        assert final["units"]["reserved"] == BUYERS + 1
        assert final["stock_left"] == 1000 - BUYERS - 1
        assert final["attempts"] == BUYERS + GREEDY_TRIES
        assert final["shed"] == shed  # every process's refusals, summed in Redis
        assert final["latency"] == BUYERS + GREEDY_TRIES - shed  # both processes' histograms


async def watch_while_buying(url: str, sale_id: str) -> list[dict[str, Any]]:
    """Eight watchers on connections of their own (the kernel spreads them over the two
    processes), while purchases arrive on fresh connections; each watcher's last figures
    once it has seen everything settle."""
    fresh = aiohttp.TCPConnector(limit=0, force_close=True)  # a new connection each
    async with (
        aiohttp.ClientSession(url, connector=fresh) as buyers,
        aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=0)) as watchers,
    ):
        in_count = 0
        everyone_in = asyncio.Event()
        expected_attempts = BUYERS + GREEDY_TRIES

        async def watch() -> dict[str, Any]:
            nonlocal in_count
            async with watchers.get(f"/admin/sales/{sale_id}/live", headers=ADMIN) as response:
                assert response.status == 200
                widest, counted_in = 0, False
                async with asyncio.timeout(30):
                    async for event in events(response):
                        if event.name != "sale":
                            continue
                        figures = event.json()
                        if not counted_in:  # its first event: this watcher is in
                            counted_in, in_count = True, in_count + 1
                            if in_count == 8:
                                everyone_in.set()
                        widest = max(widest, figures["latency_seconds"]["answered"])
                        if (
                            figures["attempts"] == expected_attempts
                            and widest
                            and (figures["latency_seconds"]["window_seconds"] >= 5)
                        ):
                            return {**figures, "latency": widest}
            raise AssertionError("the stream ended")

        async def buy(user: str) -> int:
            async with buyers.post(
                f"/v1/sales/{sale_id}/purchases", json={"user_id": user, "quantity": 1}
            ) as response:
                return response.status

        tasks = [asyncio.create_task(watch()) for _ in range(8)]
        async with asyncio.timeout(15):
            await everyone_in.wait()
        statuses = await asyncio.gather(
            *(buy(f"buyer-{i}") for i in range(BUYERS)),
            *(buy("greedy") for _ in range(GREEDY_TRIES)),
        )
        assert statuses.count(201) == BUYERS + 1
        return await asyncio.gather(*tasks)
