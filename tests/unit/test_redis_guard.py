"""Which Redis failures mean "unavailable, retry later" and which mean a bug."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as redis_errors
from redis._parsers import BaseParser

from flashsale.store.breaker import BreakerState, CircuitBreaker
from flashsale.store.guard import RedisGuard, unavailable


def as_parsed(reply: str) -> Exception:
    """The exception redis-py raises for this error reply (some codes become classes of
    their own, with the code dropped from the message)."""
    parsed: Exception = BaseParser.parse_error(reply)  # type: ignore[no-untyped-call]
    return parsed


@pytest.mark.parametrize(
    "exc",
    [
        redis_errors.ConnectionError("Connection refused"),
        redis_errors.TimeoutError("Timeout reading from socket"),
        as_parsed("BUSY Redis is busy running a script"),
        as_parsed("OOM command not allowed when used memory > 'maxmemory'"),
        as_parsed("LOADING Redis is loading the dataset in memory"),
        as_parsed("READONLY You can't write against a read only replica"),
        as_parsed("MASTERDOWN Link with MASTER is down"),
        as_parsed("MISCONF Redis is configured to save RDB snapshots"),
        as_parsed("TRYAGAIN Multiple keys request during rehashing of slot"),
    ],
)
def test_outages_are_unavailable(exc: Exception) -> None:
    assert unavailable(exc) is not None


@pytest.mark.parametrize(
    "exc",
    [
        as_parsed("BUSYGROUP Consumer Group name already exists"),
        as_parsed("ERR Error running script: attempt to compare nil"),
        as_parsed("WRONGTYPE Operation against a key holding the wrong kind"),
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


@pytest.mark.parametrize(
    ("exc", "may_have_run"),
    [
        (redis_errors.TimeoutError("Timeout reading from socket"), True),
        (redis_errors.ConnectionError("Connection closed by server."), True),
        (redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379."), False),
        # The cluster client's pool for a node was full: nothing was sent.
        (redis_errors.MaxConnectionsError(), False),
    ],
)
def test_only_a_command_that_went_out_may_have_run(exc: Exception, may_have_run: bool) -> None:
    failure = unavailable(exc)
    assert failure is not None
    assert failure.may_have_run is may_have_run
