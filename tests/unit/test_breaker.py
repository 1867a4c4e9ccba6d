"""The circuit breaker's states, driven by an injected clock."""

from __future__ import annotations

from flashsale.store.breaker import BreakerState, CircuitBreaker
from tests.unit.test_admission import Clock


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read afresh each time (a plain attribute read would be narrowed by mypy)."""
    return breaker.state


def make() -> tuple[CircuitBreaker, Clock, list[BreakerState]]:
    clock = Clock()
    changes: list[BreakerState] = []
    return CircuitBreaker(3, 2.0, clock=clock, on_change=changes.append), clock, changes


def test_opens_after_consecutive_failures_only() -> None:
    breaker, _clock, changes = make()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # the streak is broken
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert changes == [BreakerState.OPEN]


def test_probes_once_after_the_open_time_and_closes_on_success() -> None:
    breaker, clock, changes = make()
    for _ in range(3):
        breaker.record_failure()
    clock.now += 1.0
    assert not breaker.allow()
    assert breaker.retry_after() == 1.0
    clock.now += 1.0
    assert breaker.allow()  # the probe
    assert state(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_opens_it_again_for_the_full_time() -> None:
    breaker, clock, _changes = make()
    for _ in range(3):
        breaker.record_failure()
    clock.now += 2.0
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    assert breaker.retry_after() == 2.0
    assert not breaker.allow()


def test_calls_abandoned_at_their_deadline_neither_open_nor_close_it() -> None:
    breaker, clock, _changes = make()
    for _ in range(10):
        assert breaker.allow()
        breaker.record_abandoned()
    assert state(breaker) is BreakerState.CLOSED
    for _ in range(3):
        breaker.record_failure()
    clock.now += 2.0
    assert breaker.allow()  # the half-open probe...
    assert not breaker.allow()
    breaker.record_abandoned()  # ...given up by its caller: the next call may probe
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()
