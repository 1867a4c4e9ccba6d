"""`flashsale serve`: run the HTTP service, with its own Redis unless told to use one."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from flashsale.admin_token import resolve_admin_token
from flashsale.app import create_app
from flashsale.durability import durability_warnings
from flashsale.embedded_redis import EmbeddedRedis
from flashsale.redis_client import connect
from flashsale.settings import Settings

log = logging.getLogger("flashsale.serve")


async def serve(settings: Settings) -> None:
    if settings.server_workers > 1:
        log.warning(
            "server.workers=%d asked for, but this build serves from one process",
            settings.server_workers,
        )
    embedded: EmbeddedRedis | None = None
    try:
        if not settings.redis_url:
            embedded = EmbeddedRedis(
                settings.data_dir,
                settings.redis_server_binary,
                settings.redis_startup_timeout_seconds,
            )
            settings = settings.replace(redis_url=await embedded.start())
        token, token_file = resolve_admin_token(settings.admin_token, settings.data_dir)
        settings = settings.replace(admin_token=token)
        if token_file is not None:
            print(f"flashsale admin token: stored in {token_file} (mode 0600)", flush=True)
        await _report_durability(settings)
        await _run_http(settings)
    finally:
        if embedded is not None:
            await embedded.stop()


async def _report_durability(settings: Settings) -> None:
    redis = connect(settings)
    try:
        await durability_warnings(redis)
    finally:
        await redis.aclose()


async def _run_http(settings: Settings) -> None:
    runner = web.AppRunner(
        create_app(settings),
        access_log=None,
        shutdown_timeout=settings.server_shutdown_timeout_seconds,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.server_host, settings.server_port)
        await site.start()
        host, port = _bound_address(runner)
        print(f"flashsale serving on http://{host}:{port}", flush=True)
        await _until_signalled()
        log.info("stopping: answering requests in flight")
    finally:
        await runner.cleanup()


def _bound_address(runner: web.AppRunner) -> tuple[str, int]:
    address = runner.addresses[0]
    return str(address[0]), int(address[1])


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
