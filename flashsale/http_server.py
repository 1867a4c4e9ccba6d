"""Running one aiohttp app on a port until SIGTERM/SIGINT (one process of `serve`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from flashsale.app import create_app
from flashsale.metrics import Metrics
from flashsale.settings import Settings

log = logging.getLogger("flashsale.http_server")


async def until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def run_http(
    settings: Settings,
    metrics: Metrics | None = None,
    *,
    reuse_port: bool = False,
    on_ready: Callable[[str, int], None],
) -> None:
    """Serves until signalled; then answers the requests in flight and cleans up."""
    runner = web.AppRunner(
        create_app(settings, metrics),
        access_log=None,
        shutdown_timeout=settings.server_shutdown_timeout_seconds,
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, settings.server_host, settings.server_port, reuse_port=reuse_port or None
        )
        await site.start()
        address = runner.addresses[0]
        on_ready(str(address[0]), int(address[1]))
        await until_signalled()
        log.info("stopping: answering requests in flight")
    finally:
        await runner.cleanup()
