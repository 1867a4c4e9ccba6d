"""Real servers for the test session: a private redis-server on a free loopback port."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis

from flashsale.runtime.redis_server import free_port


def require_binary(name: str) -> str:
    """Locally a missing server skips its tests; in CI (CI set) it fails them."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install {name})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_for(condition: object, timeout: float, what: str, interval: float = 0.02) -> None:
    """Polls `condition()` until it is truthy; fails naming `what` after `timeout` seconds."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except Exception:  # noqa: S110 - not ready yet is an exception for most probes
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisProcess:
    """A redis-server on a fixed free loopback port that a test may kill and start again."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.binary = require_binary("redis-server")
        self.port = free_port()
        self.directory = directory
        self.extra = extra
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            wait_for(client.ping, 15, f"redis-server on port {self.port}")
        finally:
            client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@contextmanager
def redis_server(directory: Path, *extra: str) -> Iterator[str]:
    """Starts redis-server on a free loopback port; yields its URL; stops it afterwards."""
    server = RedisProcess(directory, *extra)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@dataclass
class Service:
    """A running `flashsale serve` process."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def flashsale_command() -> str:
    """The console script installed beside this interpreter (what users run)."""
    script = Path(sys.executable).parent / "flashsale"
    assert script.exists(), f"{script} missing: install the project (make install)"
    return str(script)


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    """This process's environment with only the FLASHSALE_* settings given in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    return {**clean, **(env or {})}


def run_flashsale(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs one `flashsale` command to completion."""
    return subprocess.run(
        [flashsale_command(), *args],
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def flashsale_service(
    data_dir: Path, env: dict[str, str] | None = None, *args: str
) -> Iterator[Service]:
    """Runs `flashsale serve --port 0` and yields once it prints its address."""
    data_dir.mkdir(parents=True, exist_ok=True)
    output = data_dir / "serve.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [flashsale_command(), "serve", "--port", "0", "--data-dir", str(data_dir), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_environment(env),
        )
    try:
        wait_for(
            lambda: "serving on" in output.read_text() or process.poll() is not None,
            30,
            "flashsale serve to start",
        )
        match = re.search(r"serving on (http://\S+)", output.read_text())
        assert match, f"flashsale serve did not start:\n{output.read_text()}"
        yield Service(process, match.group(1), data_dir, output)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc says it is gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


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
