"""Which Redis failures mean "unavailable, retry later" and which mean a bug."""

from __future__ import annotations

import pytest
from redis import exceptions as redis_errors

from flashsale.store.guard import unavailable


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
