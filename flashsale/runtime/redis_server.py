"""How flashsale starts a redis-server: the command line every private server shares (the
embedded one, the tests', the benchmark's), and a blocking handle for tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis

READY_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_server_command(
    binary: str,
    port: int,
    directory: Path,
    *,
    durable: bool,
    extra: Sequence[str] = (),
    config_file: Path | None = None,
) -> list[str]:
    """A loopback-only redis-server with its data in `directory`. Durable: every write is in
    the AOF and fsynced before Redis answers (what the engine needs for its holds).
    `config_file` carries what must not appear on a command line (a password)."""
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else [
        "--appendonly", "no"
    ]  # fmt: skip
    return [
        binary,
        *([str(config_file)] if config_file else []),
        "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
        "--dir", str(directory), "--save", "", *persistence,
        "--maxmemory-policy", "noeviction", "--daemonize", "no",
        "--logfile", str(directory / "redis.log"), *extra,
    ]  # fmt: skip


class RedisServer:
    """A redis-server on a fixed free loopback port that its owner may kill and start again
    (blocking: for tests and benchmarks; the engine's own is EmbeddedRedis)."""

    def __init__(
        self,
        directory: Path,
        *extra: str,
        binary: str = "redis-server",
        durable: bool = False,
        prefix: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._command = [
            *prefix,
            *redis_server_command(binary, self.port, directory, durable=durable, extra=extra),
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        try:
            while not self._answers(client):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not start; "
                        f"see {self.directory / 'redis.log'}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
