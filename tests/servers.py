"""Real servers for the test session: a private redis-server on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from flashsale.embedded_redis import free_port


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


@contextmanager
def redis_server(directory: Path, *extra: str) -> Iterator[str]:
    """Starts redis-server on a free loopback port; yields its URL; stops it afterwards."""
    binary = require_binary("redis-server")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", str(directory / "redis.log"), *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        wait_for(client.ping, 15, f"redis-server on port {port}")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(10)
