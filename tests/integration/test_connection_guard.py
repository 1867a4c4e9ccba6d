"""The connection layer below the app (api/protocol.py) on a real socket: a request is judged
by its age before its body is read, slow senders hold no in-flight slot and are cut off, and
connections past the cap are refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis
from aiohttp import web

from flashsale.api.app import create_app
from flashsale.api.context import ADMISSION, METRICS
from flashsale.api.early import early_refusal
from flashsale.api.protocol import ConnectionGuard
from flashsale.runtime.http_server import GuardedRunner
from flashsale.settings import Settings
from tests.helpers import ADMIN, sale_body
from tests.polling import eventually


@dataclass
class Served:
    url: str
    port: int
    app: web.Application
    guard: ConnectionGuard

    def shed(self, reason: str) -> float:
        value = self.app[METRICS].registry.get_sample_value(
            "flashsale_shed_total", {"reason": reason}
        )
        return value or 0.0


@asynccontextmanager
async def served(
    settings: Settings, *, extra: Callable[[web.Application], None] | None = None, **changes: Any
) -> AsyncIterator[Served]:
    """The app behind the engine's own runner on a free loopback port."""
    own = settings.replace(**changes)
    app = create_app(own)
    if extra is not None:
        extra(app)
    guard = ConnectionGuard(
        own.server.max_connections, own.server.header_timeout_seconds, early_refusal(app)
    )
    runner = GuardedRunner(app, guard, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        yield Served(f"http://127.0.0.1:{port}", port, app, guard)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def open_connections(
    port: int, count: int
) -> AsyncIterator[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    try:
        yield opened
    finally:
        for _reader, writer in opened:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length")
    )
    return int(lines[0].split()[1]), await reader.readexactly(length)


async def new_sale(http: aiohttp.ClientSession, stock: int) -> str:
    body = sale_body(stock=stock, per_user_limit=1)
    async with http.post("/admin/sales", json=body, headers=ADMIN) as response:
        assert response.status == 201
    return str(body["sale_id"])


async def test_a_request_that_waited_out_its_deadline_is_refused_before_its_body_is_read(
    settings: Settings,
) -> None:
    def blocker(app: web.Application) -> None:
        async def block(_request: web.Request) -> web.Response:
            time.sleep(0.4)  # noqa: ASYNC251 - the point: the process is busy, the queue waits
            return web.Response(text="done")

        app.router.add_get("/test/busy", block)

    async with served(settings, extra=blocker, admission_deadline_seconds=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        # Two requests in one write: both heads arrive together; the second is handled only
        # after the first has kept the process busy for 0.4 s. Its body is not JSON: read, it
        # would be a 400.
        body = b"{this is not json"
        writer.write(
            b"GET /test/busy HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /v1/sales/any-sale/purchases HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        assert (await read_response(reader))[0] == 200
        status, answer = await read_response(reader)
        writer.close()
        assert status == 503, answer
        assert b'"code":"overloaded"' in answer
        assert server.shed("queue_delay") == 1


async def test_slow_heads_hold_no_slot_and_are_cut_off(settings: Settings) -> None:
    """500 connections trickle a request head; purchases go on as if they were not there,
    and each trickler is cut off once its head is overdue."""
    async with served(
        # Room for the 500 and the shoppers: the cap has a test of its own.
        settings, server_header_timeout_seconds=2.0, server_max_connections=1000,
        admission_adaptive=False, admission_max_in_flight=200,
    ) as server, open_connections(server.port, 500) as trickles:  # fmt: skip
        for _reader, writer in trickles:
            writer.write(b"POST /v1/sales/x/purchases HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        await asyncio.gather(*(writer.drain() for _r, writer in trickles))

        async with aiohttp.ClientSession(server.url) as http:
            sale_id = await new_sale(http, stock=100)

            async def buy(i: int) -> int:
                async with http.post(
                    f"/v1/sales/{sale_id}/purchases", json={"user_id": f"u{i}", "quantity": 1}
                ) as response:
                    return response.status

            started = time.monotonic()
            statuses = await asyncio.gather(*(buy(i) for i in range(100)))
            took = time.monotonic() - started
        assert statuses == [201] * 100
        assert took < 2.0, "the purchases were held up by the trickling heads"
        assert server.guard.open >= 500  # they were all still there meanwhile

        async def all_cut_off() -> bool:
            return server.guard.heads_timed_out >= 500

        await eventually(all_cut_off, within=10, what="the overdue heads to be cut off")
        for reader, _writer in trickles:
            with suppress(ConnectionError):
                assert await reader.read() == b""


async def test_a_slow_body_is_awaited_outside_the_in_flight_bound(settings: Settings) -> None:
    """20 requests whose bodies never finish, against a bound of 5: purchases still get in,
    and the slow ones are answered 400 when their body is overdue."""
    async with served(
        settings, server_body_timeout_seconds=1.0, admission_adaptive=False,
        admission_max_in_flight=5,
    ) as server:  # fmt: skip
        async with (
            aiohttp.ClientSession(server.url) as http,
            open_connections(server.port, 20) as slow,
        ):
            sale_id = await new_sale(http, stock=20)
            for _reader, writer in slow:
                writer.write(
                    f"POST /v1/sales/{sale_id}/purchases HTTP/1.1\r\nHost: t\r\n"
                    'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user'.encode()
                )
            await asyncio.gather(*(writer.drain() for _r, writer in slow))
            for i in range(10):
                async with http.post(
                    f"/v1/sales/{sale_id}/purchases", json={"user_id": f"u{i}", "quantity": 1}
                ) as response:
                    assert response.status == 201, await response.text()
            answers = [await read_response(reader) for reader, _w in slow]
        assert {status for status, _body in answers} == {400}
        assert all(b"did not arrive" in body for _s, body in answers)


async def test_connections_past_the_cap_are_refused(settings: Settings) -> None:
    async with (
        served(settings, server_max_connections=10) as server,
        open_connections(server.port, 10) as held,
        open_connections(server.port, 1) as [(reader, writer)],
    ):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        with suppress(ConnectionResetError):
            assert await reader.read() == b""  # closed without an answer
        assert server.guard.refused == 1
        held[0][1].close()
        await eventually(lambda: server.guard.open == 9, within=5, what="one to close")
        async with aiohttp.ClientSession(server.url) as http, http.get("/healthz") as response:
            assert response.status == 200


async def test_a_purchase_at_the_bound_is_refused_from_its_head_as_the_app_would(
    settings: Settings, private_redis: str
) -> None:
    """With the in-flight bound taken (a purchase stalled on a paused Redis), the next
    purchase is refused below the app - and its answer is the app's own refusal."""
    async with (
        served(
            settings, redis_url=private_redis, admission_adaptive=False,
            admission_max_in_flight=1, admission_finish_reserve=0.0,
            admission_deadline_seconds=5.0,
        ) as server,
        aiohttp.ClientSession(server.url) as http,
    ):  # fmt: skip
        sale_id = await new_sale(http, stock=10)
        path = f"/v1/sales/{sale_id}/purchases"
        pauser = redis.Redis.from_url(private_redis)
        pauser.client_pause(1500, all=False)
        pauser.close()
        stalled = asyncio.create_task(http.post(path, json={"user_id": "first", "quantity": 1}))
        await eventually(
            lambda: server.app[ADMISSION].in_flight.current == 1, within=5, what="a slot taken"
        )

        async def refused() -> tuple[int, dict[str, str], Any]:
            async with http.post(path, json={"user_id": "next", "quantity": 1}) as response:
                headers = {name.lower(): value for name, value in response.headers.items()}
                return response.status, headers, await response.json(content_type=None)

        early = await refused()
        assert server.guard.refused_early == 1
        server.guard.early_refusal = None  # the same refusal, the whole way through the app
        full = await refused()
        assert server.guard.refused_early == 1
        assert (early[0], early[2]) == (full[0], full[2]) == (503, full[2])
        assert full[2]["code"] == "overloaded"
        assert early[1].keys() == full[1].keys()
        for name in ("content-type", "retry-after", "server", "content-length"):
            assert early[1][name] == full[1][name], name
        assert early[1]["x-request-id"] != full[1]["x-request-id"]
        assert server.shed("in_flight") == 2
        first = await stalled
        assert first.status == 201
        first.release()
