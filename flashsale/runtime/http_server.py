"""Running one aiohttp app on a port until SIGTERM/SIGINT (one process of `serve`), with
the order worker beside it when the settings ask for one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from flashsale.api.app import create_app
from flashsale.api.context import METRICS, REDIS, SCRIPTS, SETTINGS
from flashsale.api.early import early_refusal
from flashsale.api.protocol import ConnectionGuard, guard_server
from flashsale.metrics import Metrics
from flashsale.runtime.loop import until_signalled
from flashsale.settings import Settings
from flashsale.sinks import open_sink
from flashsale.worker.worker import Worker

log = logging.getLogger("flashsale.http_server")


async def run_http(
    settings: Settings,
    metrics: Metrics | None = None,
    *,
    reuse_port: bool = False,
    on_ready: Callable[[str, int], None],
) -> None:
    """Serves until signalled; then answers the requests in flight and cleans up."""
    app = create_app(settings, metrics)
    if settings.worker.in_process:
        app.cleanup_ctx.append(_in_process_worker)
    server = settings.server
    runner = GuardedRunner(
        app,
        ConnectionGuard(server.max_connections, server.header_timeout_seconds, early_refusal(app)),
        access_log=None,
        shutdown_timeout=server.shutdown_timeout_seconds,
        keepalive_timeout=server.keepalive_timeout_seconds,
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, server.host, server.port, reuse_port=reuse_port or None,
            backlog=server.listen_backlog,
        )  # fmt: skip
        await site.start()
        address = runner.addresses[0]
        on_ready(str(address[0]), int(address[1]))
        await until_signalled()
        log.info("stopping: answering requests in flight")
    finally:
        await runner.cleanup()


class GuardedRunner(web.AppRunner):
    """aiohttp's runner, with connections handled by api/protocol.py's GuardedHandler."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard

    async def _make_server(self) -> web.Server:
        return guard_server(await super()._make_server(), self.guard)


async def _in_process_worker(app: web.Application) -> AsyncIterator[None]:
    """The order-queue worker and hold sweeper, run beside the HTTP service on its Redis
    client (opened by the app's own cleanup context, which runs first)."""
    settings = app[SETTINGS]
    sink = open_sink(settings.orders.dsn, settings.data_dir)
    worker = Worker(app[REDIS], app[SCRIPTS], sink, settings, app[METRICS])
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="order-worker")
    log.info("order worker running in-process, writing to %s", sink.description)
    yield
    stop.set()  # the batch in hand is stored and acknowledged before the task returns
    try:
        await asyncio.wait_for(task, settings.server.shutdown_timeout_seconds)
    except TimeoutError:
        log.warning("order worker did not finish its batch in time; it stays pending")
    await sink.close()
