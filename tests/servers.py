"""Real servers for the test session, each private, on a free loopback port: redis-server
(through the same helper the benchmark uses) and a PostgreSQL cluster in a temp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import asyncpg
import pytest

from flashsale.runtime.redis_cluster import LocalCluster, local_redis_cluster
from flashsale.runtime.redis_server import RedisServer, free_port


def require_binary(name: str) -> str:
    """Locally a missing server skips its tests; in CI (CI set) it fails them."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install {name})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def redis_process(directory: Path, *extra: str) -> RedisServer:
    """A private redis-server (not yet started) that a test may kill and start again."""
    return RedisServer(directory, *extra, binary=require_binary("redis-server"))


@contextmanager
def redis_cluster(
    directory: Path, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 2000
) -> Iterator[LocalCluster]:
    """A private Redis Cluster for a test (flashsale.runtime.redis_cluster), which skips
    locally, and fails in CI, where redis-server or redis-cli is missing."""
    with local_redis_cluster(
        directory, primaries, replicas, node_timeout_ms,
        binary=require_binary("redis-server"), cli=require_binary("redis-cli"),
    ) as cluster:  # fmt: skip
        yield cluster


@contextmanager
def redis_server(directory: Path, *extra: str) -> Iterator[str]:
    """Starts redis-server on a free loopback port; yields its URL; stops it afterwards."""
    with redis_process(directory, *extra) as server:
        yield server.url


def _postgres_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    candidates = []
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


class PostgresServer:
    """A private PostgreSQL cluster in a temporary directory, on a free loopback port.

    PostgreSQL refuses to run as root, so as root it runs as the `postgres` user that
    Debian's package creates.
    """

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            require_binary("postgresql (initdb, pg_ctl)")
        assert bindir is not None
        self._bin = bindir
        self._user = "postgres" if os.geteuid() == 0 else None
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="flashsale-pg-"))
        self.data = self.directory / "data"
        if self._user:
            shutil.chown(self.directory, self._user)
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            check=True,
            user=self._user,
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "pg.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    async def new_database(self, prefix: str) -> str:
        """Creates an empty database and returns its DSN."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.dsn.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.init()
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.SubprocessError):
            server.stop()
        server.remove()
