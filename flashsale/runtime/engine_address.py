"""Where a running `serve` listens, written into its data dir once it serves, so that the
commands run beside it (`flashsale sales ...`) find it as `audit` finds its Redis."""

from __future__ import annotations

import json
import os
from pathlib import Path

ADDRESS_FILE = "serve.json"


def record_address(data_dir: Path, url: str) -> Path:
    path = data_dir / ADDRESS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    temporary.replace(path)  # readers see the old file or the new one, never half of one
    return path


def forget_address(data_dir: Path) -> None:
    path = data_dir / ADDRESS_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running_engine_url(data_dir: Path) -> str | None:
    """The URL of the `serve` running on this data dir, if one is (its pid is alive)."""
    try:
        info = json.loads((data_dir / ADDRESS_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(info["url"])
