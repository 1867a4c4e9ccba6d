"""The load generators the benchmark drives, pinned to their own core: wrk (closed-loop, its
latency distribution parsed) and the figures it yields."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

ALL_CORES = os.cpu_count() or 1


def cores(role: str) -> list[str]:
    """taskset prefix: the load generator gets the last core, servers the rest."""
    if ALL_CORES < 2 or shutil.which("taskset") is None:
        return []
    if role == "load":
        return ["taskset", "-c", str(ALL_CORES - 1)]
    return ["taskset", "-c", f"0-{ALL_CORES - 2}"]


@dataclass
class Figures:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    """wrk's latencies ("850.00us", "2.31ms", "1.02s", "1.10m") in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk printed a latency this script does not understand: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(name: str, url: str, seconds: float, connections: int, script: Path | None) -> Figures:
    args = [
        *cores("load"),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
    ]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The "Latency Distribution" lines, e.g. "     99%   12.34ms" (anchored: the thread
    # stats table above them ends in percentages too).
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Figures(name, rps, p50, p99, int(non_2xx.group(1)) if non_2xx else 0)


def warm(url: str, script: Path | None, connections: int) -> None:
    wrk("warm-up", url, 1, connections, script)


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[98]
