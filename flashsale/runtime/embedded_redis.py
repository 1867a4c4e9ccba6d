"""A private redis-server child: durable settings, restarted if it dies, never orphaned."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from pathlib import Path

from redis.asyncio import Redis

from flashsale.errors import EmbeddedRedisError
from flashsale.runtime.loop import die_with_parent
from flashsale.runtime.redis_server import free_port, redis_server_command
from flashsale.runtime.secrets_file import read_or_create_secret, write_private
from flashsale.settings import Settings

log = logging.getLogger("flashsale.embedded_redis")

RUNTIME_FILE = "embedded-redis.json"
LOCK_FILE = "owner.lock"
PASSWORD_FILE = "password"  # noqa: S105 - a file name, not a secret
CONFIG_FILE = "redis.conf"
_STOP_GRACE_SECONDS = 10.0
_RESTART_BACKOFF_MAX_SECONDS = 5.0
INSTALL_HINT = (
    "install it (Debian/Ubuntu: apt-get install redis-server) or set FLASHSALE_REDIS_URL "
    "to use a Redis server that is already running"
)


class EmbeddedRedis:
    """Owns one redis-server process with its data under `data_dir/redis`. It listens on
    loopback only and asks for a password that lives in a 0600 file of the data dir, so no
    other local user can reach the stock."""

    def __init__(
        self, data_dir: Path, binary: str, startup_timeout: float, max_memory_bytes: int
    ) -> None:
        self._dir = (data_dir / "redis").resolve()
        self._runtime_file = data_dir.resolve() / RUNTIME_FILE
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._max_memory_bytes = max_memory_bytes
        self._password = ""
        self._port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock_fd: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedRedis:
        return cls(
            settings.data_dir,
            settings.redis.server_binary,
            settings.redis.startup_timeout_seconds,
            embedded_max_memory_bytes(settings.redis.embedded_max_memory_mb),
        )

    @property
    def url(self) -> str:
        return f"redis://:{self._password}@127.0.0.1:{self._port}/0"

    @property
    def address(self) -> str:
        """Where it listens, without the password (for logs)."""
        return f"redis://127.0.0.1:{self._port}/0"

    async def start(self) -> str:
        executable = shutil.which(self._binary)
        if executable is None:
            raise EmbeddedRedisError(f"{self._binary!r} was not found: {INSTALL_HINT}")
        self._binary = executable
        self._dir.mkdir(parents=True, exist_ok=True)
        self._dir.chmod(0o700)
        self._take_ownership()
        self._password = read_or_create_secret(self._dir / PASSWORD_FILE)
        # requirepass in a 0600 file, not on the command line, where `ps` would show it.
        write_private(self._dir / CONFIG_FILE, f'requirepass "{self._password}"\n')
        self._port = free_port()
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="embedded-redis")
        return self.url

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()  # redis-server flushes its AOF and exits on SIGTERM
            try:
                await asyncio.wait_for(process.wait(), _STOP_GRACE_SECONDS)
            except TimeoutError:
                log.error("redis-server did not stop within %ss; killing it", _STOP_GRACE_SECONDS)
                process.kill()
                await process.wait()
        self._runtime_file.unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _take_ownership(self) -> None:
        """Two redis-servers on one data dir would corrupt its AOF: one owner at a time.
        The kernel drops the lock when the owner dies, however it dies."""
        fd = os.open(self._dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedRedisError(
                f"another flashsale process already runs the Redis of {self._dir.parent} "
                f"(see {self._runtime_file}); stop it, or point FLASHSALE_REDIS_URL at it"
            ) from None
        self._lock_fd = fd

    async def _spawn(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *redis_server_command(
                self._binary,
                self._port,
                self._dir,
                durable=True,
                config_file=self._dir / CONFIG_FILE,
                extra=["--maxmemory", str(self._max_memory_bytes)],
            ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            # Its own session: a Ctrl-C in the terminal reaches the service, which then stops
            # Redis last, after requests in flight are answered.
            start_new_session=True,
        )
        await self._wait_until_ready()
        # It names the password: readable by this user only, like the password file.
        write_private(
            self._runtime_file,
            json.dumps({"url": self.url, "pid": self._process.pid, "owner_pid": os.getpid()}),
        )
        log.info(
            "embedded redis-server pid %d on %s (password in %s), maxmemory %d MiB, data in %s",
            self._process.pid, self.address, self._dir / PASSWORD_FILE,
            self._max_memory_bytes // 2**20, self._dir,
        )  # fmt: skip

    async def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        client = Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while True:
                if self._process.returncode is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with code {self._process.returncode} at start-up; "
                        f"see {self._dir / 'redis.log'}"
                    )
                with contextlib.suppress(Exception):
                    if await client.ping():
                        return
                if time.monotonic() > deadline:
                    self._process.kill()
                    raise EmbeddedRedisError(
                        f"redis-server did not answer within {self._startup_timeout}s; "
                        f"see {self._dir / 'redis.log'}"
                    )
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def _supervise(self) -> None:
        backoff = 0.1
        while not self._stopping:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            log.error("embedded redis-server exited unexpectedly (code %s); restarting", code)
            while not self._stopping:
                try:
                    await self._spawn()
                    backoff = 0.1
                    break
                except (EmbeddedRedisError, OSError) as exc:
                    log.error("restarting redis-server failed: %s; next try in %.1fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _RESTART_BACKOFF_MAX_SECONDS)


def embedded_max_memory_bytes(configured_mb: int) -> int:
    """The configured limit, or (0) a quarter of the memory this process may use: the
    machine's, or its container's when that is smaller. Past it, with noeviction, Redis
    refuses writes (the engine answers 503) instead of the kernel killing it."""
    if configured_mb:
        return configured_mb * 2**20
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            available = min(available, int(limit))
    return max(available // 4, 64 * 2**20)
