"""`flashsale serve`: run the HTTP service, with its own Redis unless told to use one."""

from __future__ import annotations

import logging
import os

from flashsale.admin_token import resolve_admin_token
from flashsale.durability import durability_warnings
from flashsale.embedded_redis import EmbeddedRedis
from flashsale.errors import FlashsaleError
from flashsale.http_server import run_http
from flashsale.process_pool import ProcessPool
from flashsale.redis_client import connect
from flashsale.settings import Settings

log = logging.getLogger("flashsale.serve")


async def serve(settings: Settings) -> None:
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
        processes = settings.server_workers or os.cpu_count() or 1
        try:
            if processes == 1:
                await run_http(settings, on_ready=_announce)
            else:
                await ProcessPool(settings, processes).run()
        except OSError as exc:
            address = f"{settings.server_host}:{settings.server_port}"
            raise FlashsaleError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
    finally:
        if embedded is not None:
            await embedded.stop()


async def _report_durability(settings: Settings) -> None:
    redis = connect(settings)
    try:
        await durability_warnings(redis)
    finally:
        await redis.aclose()


def _announce(host: str, port: int) -> None:
    print(f"flashsale serving on http://{host}:{port}", flush=True)
