"""What each try of a Redis call went through, not only its last.

redis-py retries a command once when its connection breaks (store/client.py) and then raises
the last try's error. That hides the first try's fate: a reply lost after Redis ran the
command, then a retry that cannot even connect, surfaces as "could not connect" - and an
answer built on that alone would say nothing was taken when something was. The guard opens a
record around every call; the client's retry adds each failed try to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from redis.asyncio.retry import Retry

T = TypeVar("T")

# The failed tries of the Redis call running in this task (None outside a guarded call).
failed_tries: ContextVar[list[Exception] | None] = ContextVar("failed_tries", default=None)


class RecordingRetry(Retry):
    """redis-py's Retry, noting each failed try in `failed_tries` before it retries."""

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        async def noting(error: Exception, *count: int) -> Any:
            tries = failed_tries.get()
            if tries is not None:
                tries.append(error)
            return await fail(error, *count)

        return await super().call_with_retry(do, noting, is_retryable, with_failure_count)
