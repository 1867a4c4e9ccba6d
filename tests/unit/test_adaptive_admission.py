"""The adaptive in-flight limit and the queueing-delay rule, on injected clocks."""

from __future__ import annotations

from flashsale.admission.adaptive import AdaptiveLimit
from flashsale.admission.queue_delay import QueueDelay

WINDOW = 0.1


def run(limit: AdaptiveLimit, rtt: float, seconds: float, start: float, busy: bool = True) -> float:
    """Requests answered in `rtt` each, 10 per window, for `seconds` from `start`; busy:
    the process keeps its whole limit in flight. Returns the time it ended."""
    now = start
    while now < start + seconds:
        now += WINDOW / 10
        limit.sample(rtt, limit.limit if busy else 1, now)
    return now


def test_the_limit_rises_while_latency_holds_and_falls_when_it_climbs() -> None:
    limit = AdaptiveLimit(floor=8, ceiling=2048, initial=64, window=WINDOW)
    now = run(limit, 0.005, 5, 0.0)
    steady = limit.limit
    assert steady > 120, steady  # latency held: it grew, by a fifth of sqrt(limit) a window
    now = run(limit, 0.005, 5, now)
    assert limit.limit > steady

    # Latency five times the usual: the limit falls, and fast (at most halving per window).
    before = limit.limit
    now = run(limit, 0.025, 1, now)
    assert limit.limit < before * 0.5, (before, limit.limit)
    now = run(limit, 0.025, 5, now)
    low = limit.limit
    assert low < before * 0.2

    # Back to normal: it climbs again.
    run(limit, 0.005, 5, now)
    assert limit.limit > low * 2, (low, limit.limit)


def test_it_stays_within_its_floor_and_ceiling() -> None:
    limit = AdaptiveLimit(floor=20, ceiling=100, initial=64, window=WINDOW)
    now = run(limit, 0.005, 30, 0.0)
    assert limit.limit == 100
    seen = []
    for _ in range(30):
        now = run(limit, 1.0, 0.1, now)
        seen.append(limit.limit)
    assert min(seen) == 20, seen  # down to the floor, never below it


def test_a_process_that_uses_little_of_its_limit_does_not_grow_it() -> None:
    limit = AdaptiveLimit(floor=8, ceiling=2048, initial=64, window=WINDOW)
    run(limit, 0.005, 10, 0.0, busy=False)
    assert limit.limit == 64


def test_a_short_queue_passes_and_a_standing_one_sheds_its_oldest() -> None:
    codel = QueueDelay(target=0.005, interval=0.1, deadline=2.0)
    # A burst that drains: some requests wait 30 ms, but the interval's best waited 1 ms.
    now = 0.0
    for delay in (0.001, 0.030, 0.002, 0.030):
        now += 0.03
        assert not codel.refuse(delay, now)
    # A standing queue: for a whole interval nobody waited under 20 ms.
    for _ in range(5):
        now += 0.03
        codel.refuse(0.020, now)
    assert codel.overloaded
    assert codel.refuse(0.020, now + 0.001)  # waited past the slough timeout (10 ms)
    assert not codel.refuse(0.004, now + 0.002)  # a fresh one still goes in
    # The queue drains: the next interval's best is fresh, and nothing is refused.
    for _ in range(5):
        now += 0.03
        codel.refuse(0.001, now)
    assert not codel.overloaded
    assert not codel.refuse(0.030, now + 0.001)


def test_a_request_older_than_its_deadline_is_refused_whatever_the_state() -> None:
    codel = QueueDelay(target=0.005, interval=0.1, deadline=2.0)
    assert codel.refuse(2.5, 1.0)
    assert not codel.overloaded


def test_with_codel_off_only_the_deadline_refuses() -> None:
    codel = QueueDelay(target=0.0, interval=0.1, deadline=2.0)
    now = 0.0
    for _ in range(20):
        now += 0.03
        assert not codel.refuse(1.5, now)
    assert codel.refuse(2.0, now)
