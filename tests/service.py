"""A real `flashsale` process for end-to-end tests: the console script users run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import ADMIN_TOKEN
from tests.polling import eventually_blocking
from tests.servers import redis_server


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
        eventually_blocking(
            lambda: "serving on" in output.read_text() or process.poll() is not None,
            within=30,
            what="flashsale serve to start",
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


def wait_until_gone(pid: int, what: str, within: float = 10) -> None:
    eventually_blocking(lambda: not pid_alive(pid), within=within, what=what)


# Every request of a test comes from 127.0.0.1, so no limit per address; a shopper who
# repeats within the second is shed (rate_limited_user): the shed figures move.
GREEDY_SHOPPERS_SHED = {
    "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "0",
    "FLASHSALE_ADMISSION_USER_RATE_PER_SECOND": "1",
    "FLASHSALE_ADMISSION_USER_BURST": "2",
}


@contextmanager
def service_with_own_redis(root: Path, env: dict[str, str], *args: str) -> Iterator[Service]:
    """`flashsale serve` (the test admin token, `env`, `args`) on a redis-server of its own
    under `root`."""
    with redis_server(root / "redis") as redis_url:
        settings = {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN, **env}
        with flashsale_service(root / "serve", settings, *args) as running:
            yield running
