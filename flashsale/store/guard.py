"""Every Redis call of the engine: refused at once while the circuit breaker is open, and
Redis' failures turned into StoreUnavailableError (which the breaker counts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from redis import exceptions as redis_errors

from flashsale.errors import BreakerOpenError, StoreUnavailableError
from flashsale.store.breaker import CircuitBreaker
from flashsale.store.tries import failed_tries

# Redis refusals that mean "not now" rather than "this script is wrong". redis-py turns some
# into classes of their own and drops the code from the message (OOM, READONLY, MASTERDOWN,
# TRYAGAIN, LOADING, CLUSTERDOWN); the others keep it as the message's first word (matched
# whole: BUSYGROUP, say, is not BUSY).
_UNAVAILABLE_CLASSES = (
    redis_errors.ConnectionError,  # BusyLoadingError (LOADING) is one
    redis_errors.TimeoutError,
    redis_errors.OutOfMemoryError,
    redis_errors.ReadOnlyError,
    redis_errors.ClusterDownError,  # MasterDownError (MASTERDOWN) is one
    redis_errors.TryAgainError,
)
_UNAVAILABLE_CODES = frozenset(
    {"OOM", "READONLY", "MASTERDOWN", "BUSY", "LOADING", "MISCONF", "TRYAGAIN"}
)


def unavailable(
    exc: BaseException, earlier_tries: Sequence[BaseException] = ()
) -> StoreUnavailableError | None:
    """The StoreUnavailableError a Redis failure amounts to, or None for a bug (a script
    error). `earlier_tries` are the failures of the tries the client made before the last
    one: any of them may have let the command run."""
    if isinstance(exc, _UNAVAILABLE_CLASSES):
        may_have_run = any(_may_have_run(e) for e in (*earlier_tries, exc))
        return StoreUnavailableError(
            f"Redis is unavailable: {type(exc).__name__}: {exc}", may_have_run=may_have_run
        )
    if isinstance(exc, redis_errors.ResponseError):
        code = str(exc).split(" ", 1)[0]
        if code in _UNAVAILABLE_CODES:
            return StoreUnavailableError(
                f"Redis refused the write: {exc}",
                may_have_run=any(_may_have_run(e) for e in earlier_tries),
            )
    return None


def _may_have_run(exc: BaseException) -> bool:
    """A read that timed out or a connection lost after the command went out may have let it
    run; a connection never made (or never taken from a full cluster pool), or Redis' own
    refusal, did not."""
    if isinstance(exc, redis_errors.MaxConnectionsError):
        return False
    lost_reply = isinstance(
        exc, (redis_errors.ConnectionError, redis_errors.TimeoutError)
    ) and not isinstance(exc, redis_errors.BusyLoadingError)
    return lost_reply and "connecting to" not in str(exc)


class RedisGuard:
    def __init__(self, breaker: CircuitBreaker | None) -> None:
        self._breaker = breaker

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        """Failures open the breaker, successes close it; a call cut short by the caller's
        deadline is neither (a shopper's patience says nothing about Redis)."""
        breaker = self._breaker
        if breaker is not None and not breaker.allow():
            raise BreakerOpenError(breaker.retry_after())
        tries = failed_tries.set([])
        try:
            yield
        except asyncio.CancelledError:
            if breaker is not None:
                breaker.record_abandoned()
            raise
        except Exception as exc:
            failure = unavailable(exc, failed_tries.get() or ())
            if failure is None:
                if breaker is not None:
                    breaker.record_success()  # Redis answered; the fault is elsewhere
                raise
            if breaker is not None:
                breaker.record_failure()
            raise failure from exc
        else:
            if breaker is not None:
                breaker.record_success()
        finally:
            failed_tries.reset(tries)
