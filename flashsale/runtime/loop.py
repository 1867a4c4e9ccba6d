"""Process plumbing every command shares: the event loop, stop signals, and children that
die with their parent."""

from __future__ import annotations

import asyncio
import ctypes
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


def run_coroutine(main: Coroutine[Any, Any, T]) -> T:
    """Runs `main` on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (must be called inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def until_signalled() -> None:
    await stop_event_on_signals().wait()


def die_with_parent() -> None:
    """Runs in a child process: the kernel sends it SIGTERM if its parent dies, even by
    SIGKILL, so it never outlives the service (Linux only; elsewhere the parent must stop it)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
