"""`serve --workers N`: N service processes sharing one port (SO_REUSEPORT), each with its own
Redis pool, supervised by the parent (restarted if one dies, stopped with it)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import socket
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent

from prometheus_client import multiprocess

from flashsale.errors import FlashsaleError
from flashsale.logs import configure as configure_logs
from flashsale.metrics import Metrics
from flashsale.pause import pause
from flashsale.runtime.http_server import run_http
from flashsale.runtime.loop import die_with_parent, run_coroutine, until_signalled
from flashsale.settings import Settings

log = logging.getLogger("flashsale.process_pool")

METRICS_DIR = "metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_READY_TIMEOUT_SECONDS = 60.0
_STOP_GRACE_SECONDS = 20.0


def _child_main(settings: Settings, ready: ProcessEvent) -> None:
    """Entry point of one service process (a fresh interpreter: spawn)."""
    die_with_parent()
    configure_logs(settings.log.level, settings.log.format)
    run_coroutine(
        run_http(
            settings,
            Metrics(multiprocess_dir=os.environ[MULTIPROC_ENV]),
            reuse_port=True,
            on_ready=lambda _host, _port: ready.set(),
        )
    )


class ProcessPool:
    def __init__(self, settings: Settings, count: int) -> None:
        self._settings = settings
        self._count = count
        self._context = multiprocessing.get_context("spawn")
        self._children: list[BaseProcess | None] = [None] * count
        # Each child's ready event, held as long as the child: the event is a named semaphore
        # the child opens while it starts, and it is unlinked once the parent drops it.
        self._readies: list[ProcessEvent | None] = [None] * count
        self._stopping = False

    def _start(self, index: int, port: int) -> ProcessEvent:
        # One in-process order worker is plenty: the others only serve HTTP.
        settings = self._settings.replace(
            server_port=port,
            worker_in_process=self._settings.worker.in_process and index == 0,
        )
        ready = self._context.Event()
        child = self._context.Process(
            target=_child_main, args=(settings, ready), name=f"flashsale-http-{index}"
        )
        child.start()
        self._children[index] = child
        self._readies[index] = ready
        return ready

    async def run(self, on_ready: Callable[[str, int], None]) -> None:
        metrics_dir = self._settings.data_dir.resolve() / METRICS_DIR
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)  # inherited by every child
        # Holding a bound (never listening) socket fixes the port for all children, also
        # when the operator asked for port 0.
        family = socket.AF_INET6 if ":" in self._settings.server.host else socket.AF_INET
        anchor = socket.socket(family, socket.SOCK_STREAM)
        anchor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        anchor.bind((self._settings.server.host, self._settings.server.port))
        port = int(anchor.getsockname()[1])
        loop = asyncio.get_running_loop()
        try:
            readies = [self._start(i, port) for i in range(self._count)]
            for ready in readies:
                if not await loop.run_in_executor(None, ready.wait, _READY_TIMEOUT_SECONDS):
                    raise FlashsaleError("a service process did not start in time")
            on_ready(self._settings.server.host, port)
            supervisor = asyncio.create_task(self._supervise(port))
            await until_signalled()
            self._stopping = True
            supervisor.cancel()
        finally:
            self._stopping = True
            await loop.run_in_executor(None, self._stop_children)
            anchor.close()

    async def _supervise(self, port: int) -> None:
        while not self._stopping:
            await pause(0.5)
            for index, child in enumerate(self._children):
                if child is None or child.is_alive() or self._stopping:
                    continue
                log.error("service process %s exited (code %s); restarting", child.pid,
                          child.exitcode)  # fmt: skip
                if child.pid is not None:
                    multiprocess.mark_process_dead(child.pid)  # type: ignore[no-untyped-call]
                self._start(index, port)

    def _stop_children(self) -> None:
        for child in self._children:
            if child is not None and child.is_alive():
                child.terminate()
        for child in self._children:
            if child is None:
                continue
            child.join(_STOP_GRACE_SECONDS)
            if child.is_alive():
                log.error("service process %s did not stop; killing it", child.pid)
                child.kill()
                child.join()
