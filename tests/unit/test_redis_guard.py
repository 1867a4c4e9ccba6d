"""Which Redis failures mean "unavailable, retry later" and which mean a bug."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as redis_errors

from flashsale.store.breaker import BreakerState, CircuitBreaker
from flashsale.store.guard import RedisGuard, unavailable


@pytest.mark.parametrize(
    "exc",
    [
        redis_errors.ConnectionError("Connection refused"),
        redis_errors.TimeoutError("Timeout reading from socket"),
        redis_errors.ResponseError("BUSY Redis is busy running a script"),
        redis_errors.ResponseError("OOM command not allowed when used memory > 'maxmemory'"),
        redis_errors.ResponseError("LOADING Redis is loading the dataset in memory"),
        redis_errors.ResponseError("READONLY You can't write against a read only replica"),
    ],
)
def test_outages_are_unavailable(exc: Exception) -> None:
    assert unavailable(exc) is not None


@pytest.mark.parametrize(
    "exc",
    [
        redis_errors.ResponseError("BUSYGROUP Consumer Group name already exists"),
        redis_errors.ResponseError("ERR Error running script: attempt to compare nil"),
        redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"),
        ValueError("not Redis at all"),
    ],
)
def test_bugs_are_not_dressed_up_as_outages(exc: Exception) -> None:
    assert unavailable(exc) is None


async def test_a_call_cut_short_by_its_deadline_is_not_a_redis_failure() -> None:
    breaker = CircuitBreaker(failure_threshold=2, open_seconds=1.0)
    guard = RedisGuard(breaker)
    for _ in range(5):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01), guard():
                await asyncio.Event().wait()  # Redis stalls; the shopper's deadline passes
    assert breaker.state is BreakerState.CLOSED
