"""GET /admin/sales/{id}/live: the operator's token or nothing, an event a second that
follows the sale, and hundreds of watchers served by one reading a second."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from flashsale.api.context import LIVE
from tests.helpers import ADMIN
from tests.integration.conftest import CreateSale
from tests.polling import eventually
from tests.sse import Event, events

Client = TestClient[Any, Any]


@asynccontextmanager
async def stream(
    session: aiohttp.ClientSession | Client, sale_id: str
) -> AsyncIterator[AsyncIterator[Event]]:
    async with session.get(f"/admin/sales/{sale_id}/live", headers=ADMIN) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        yield events(response)


async def next_sale_event(feed: AsyncIterator[Event]) -> dict[str, Any]:
    async with asyncio.timeout(5):
        async for event in feed:
            if event.name == "sale":
                figures: dict[str, Any] = event.json()
                return figures
    raise AssertionError("the stream ended")


async def test_the_stream_needs_the_token_and_a_sale(
    client: Client, create_sale: CreateSale
) -> None:
    sale = await create_sale()
    path = f"/admin/sales/{sale['sale_id']}/live"
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        response = await client.get(path, headers=headers)
        assert response.status == 401
        assert response.headers["Content-Type"] == "application/problem+json"
        assert (await response.json())["code"] == "unauthorized"
    response = await client.get("/admin/sales/no-such-sale/live", headers=ADMIN)
    assert response.status == 404
    assert (await response.json())["code"] == "not_found"


async def test_an_event_a_second_follows_the_sale(client: Client, create_sale: CreateSale) -> None:
    sale = await create_sale(stock=10, per_user_limit=2)
    sale_id = sale["sale_id"]
    async with stream(client, sale_id) as feed:
        first = await next_sale_event(feed)
        assert (first["sale_id"], first["stock_left"], first["stock_total"]) == (sale_id, 10, 10)
        assert first["units"] == {"reserved": 0, "confirmed": 0, "cancelled": 0, "expired": 0}
        assert first["breaker"] == "closed"
        assert first["waiting_room"] is None

        orders = []
        for user in ("ann", "ann", "bob"):
            response = await client.post(
                f"/v1/sales/{sale_id}/purchases", json={"user_id": user, "quantity": 1}
            )
            assert response.status == 201
            orders.append((await response.json())["order_id"])
        assert (await client.post(f"/v1/orders/{orders[0]}/confirm")).status == 200

        arrivals: list[float] = []
        seen: list[dict[str, Any]] = []
        while len(seen) < 4 or seen[-1]["units"]["confirmed"] < 1:
            event = await next_sale_event(feed)
            seen.append(event)
            arrivals.append(asyncio.get_running_loop().time())
            assert len(seen) < 10, seen[-1]
    last = seen[-1]
    assert last["stock_left"] == 7
    assert last["units"] == {"reserved": 2, "confirmed": 1, "cancelled": 0, "expired": 0}
    assert last["attempts"] == 3
    # The attempts showed up as a rate, and their answers as latency, in some second.
    assert max(e["per_second"]["attempts"] for e in seen) > 0
    assert max(e["latency_seconds"]["answered"] for e in seen) >= 3
    assert all(e["latency_seconds"]["p99"] is None or e["latency_seconds"]["p99"] > 0 for e in seen)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.5 < gap < 1.6 for gap in gaps), gaps


async def test_hundreds_of_watchers_share_one_reading_a_second(
    client: Client, create_sale: CreateSale
) -> None:
    sale_id = (await create_sale())["sale_id"]
    feeds = client.app[LIVE]
    watchers = 300
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(str(client.make_url("/")), connector=connector) as session:
        two_events: list[list[int]] = []
        leave = asyncio.Event()

        async def watch() -> None:
            async with stream(session, sale_id) as feed:
                numbers = []
                async with asyncio.timeout(30):
                    async for event in feed:
                        numbers.append(int(event.event_id or 0))
                        if len(numbers) == 2:
                            break
                two_events.append(numbers)
                await leave.wait()  # everyone stays on until all are counted at once

        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        await eventually(
            lambda: feeds.watching(sale_id) == watchers and len(two_events) == watchers,
            within=30, what="every watcher in, each with two events",
        )  # fmt: skip
        assert feeds.feeds_open() == 1  # one reading a second for all of them
        leave.set()
        await asyncio.gather(*tasks)
    assert len(two_events) == watchers
    # Each got consecutive events of the same numbered feed.
    assert all(b == a + 1 for a, b in two_events)
    await eventually(lambda: feeds.watching(sale_id) == 0, within=5, what="the watchers gone")
    assert feeds.feeds_open() == 0  # nobody watches: nothing is read any more
