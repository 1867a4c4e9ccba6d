"""Waiting for something to happen in a test: poll it until a deadline, never a bare sleep.

`eventually` serves async tests (the check may be a coroutine function or a plain one);
`eventually_blocking` serves tests that drive processes step by step. Both share one rule:
the check's first truthy result is returned; past the deadline a TimeoutError names what was
awaited and the last result seen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


class _Deadline:
    def __init__(self, within: float, what: str) -> None:
        self._within = within
        self._what = what
        self._at = time.monotonic() + within

    def check(self, last: object) -> None:
        if time.monotonic() > self._at:
            raise TimeoutError(
                f"timed out after {self._within}s waiting for {self._what} (last: {last!r})"
            )


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float, what: str, interval: float = ...
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T], *, within: float, what: str, interval: float = ...
) -> T: ...


async def eventually(
    check: Callable[[], Any], *, within: float, what: str, interval: float = 0.05
) -> Any:
    deadline = _Deadline(within, what)
    while True:
        result = check()
        value = await result if inspect.isawaitable(result) else result
        if value:
            return value
        deadline.check(value)
        await asyncio.sleep(interval)


def eventually_blocking(
    check: Callable[[], T],
    *,
    within: float,
    what: str,
    interval: float = 0.02,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """`ignoring`: exceptions that mean "not yet" (a server still starting refuses)."""
    deadline = _Deadline(within, what)
    while True:
        last: object
        try:
            last = value = check()
        except ignoring as exc:
            last = exc
        else:
            if value:
                return value
        deadline.check(last)
        time.sleep(interval)
