"""`flashsale serve`: run the HTTP service, with its own Redis unless told to use one."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from flashsale.errors import FlashsaleError
from flashsale.runtime.admin_token import resolve_admin_token, resolve_signing_key
from flashsale.runtime.embedded_redis import EmbeddedRedis
from flashsale.runtime.engine_address import forget_address, record_address
from flashsale.runtime.http_server import run_http
from flashsale.runtime.process_pool import ProcessPool
from flashsale.settings import Settings
from flashsale.store.client import connect
from flashsale.store.durability import durability_warnings

log = logging.getLogger("flashsale.serve")


async def serve(settings: Settings) -> None:
    embedded: EmbeddedRedis | None = None
    try:
        if not settings.redis.url:
            embedded = EmbeddedRedis.from_settings(settings)
            settings = settings.replace(redis_url=await embedded.start())
        token, token_file = resolve_admin_token(settings.admin.token, settings.data_dir)
        settings = settings.replace(
            admin_token=token,
            queue_signing_key=resolve_signing_key(settings.queue.signing_key, settings.data_dir),
        )
        if token_file is not None:
            print(f"flashsale admin token: stored in {token_file} (mode 0600)", flush=True)
        await _report_durability(settings)
        processes = settings.server.workers or os.cpu_count() or 1
        announce = _announcer(settings.data_dir, processes)
        try:
            if processes == 1:
                await run_http(settings, on_ready=announce)
            else:
                await ProcessPool(settings, processes).run(on_ready=announce)
        except OSError as exc:
            address = f"{settings.server.host}:{settings.server.port}"
            raise FlashsaleError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
        finally:
            forget_address(settings.data_dir)
    finally:
        if embedded is not None:
            await embedded.stop()


async def _report_durability(settings: Settings) -> None:
    redis = await connect(settings)
    try:
        await durability_warnings(redis)
    finally:
        await redis.aclose()


# Listening on every address: the commands beside it reach it on loopback.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _announcer(data_dir: Path, processes: int) -> Callable[[str, int], None]:
    def announce(host: str, port: int) -> None:
        url = _url(host, port)
        record_address(data_dir, _url(_LOOPBACK.get(host, host), port))
        several = f" ({processes} processes)" if processes > 1 else ""
        print(f"flashsale serving on {url}{several}", flush=True)

    return announce
