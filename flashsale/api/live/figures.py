"""What one event of a sale's live stream says, from two readings a second or more apart:
the sale's counters in Redis (every process adds to them, so they are the whole engine's)
and the purchase-latency histogram summed over the processes (prometheus multiprocess).
Pure: the readings come in, the event goes out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from msgspec import Struct

from flashsale.records import SaleRecord, SaleStatus
from flashsale.timefmt import format_ms

# Cumulative counts of a histogram: (upper bound, observations at or below it), by bound.
Buckets = tuple[tuple[float, float], ...]

BREAKER_STATES = {0: "closed", 1: "half_open", 2: "open"}


@dataclass(frozen=True)
class Reading:
    """One look at a sale and at the engine, taken at `at` (event-loop seconds)."""

    at: float
    sale: SaleRecord
    latency: Buckets  # the purchase route's histogram, all processes
    breaker: int  # worst breaker state over the processes
    backlog: int  # the sale's order events not yet in the order store


class Rates(Struct):
    """Per second, over the time between the two readings."""

    attempts: float
    reserved: float  # orders
    rejected: float
    shed: float
    shed_by_reason: dict[str, float]


class Latency(Struct):
    """Purchases answered by the engine (refusals are not timed: they cost nothing), over
    the last `window_seconds`; null quantiles when there were none."""

    p50: float | None
    p99: float | None
    answered: int
    window_seconds: float


class Room(Struct):
    waiting: int
    admitted: int
    admitted_per_second: float  # measured, all processes
    admit_per_second: float | None  # configured; null: the engine's measured pace


class Units(Struct):
    reserved: int
    confirmed: int
    cancelled: int
    expired: int


class LiveEvent(Struct):
    sale_id: str
    at: str  # the Redis time the sale was read at
    status: SaleStatus
    stock_total: int
    stock_left: int
    paused: bool
    units: Units
    attempts: int
    shed: int
    per_second: Rates
    latency_seconds: Latency
    waiting_room: Room | None
    order_backlog: int
    breaker: str


def live_event(window: Sequence[Reading]) -> LiveEvent:
    """The event for the newest reading, with rates against the one before it and latency
    over the whole window (oldest first; at least one reading)."""
    now, before, oldest = window[-1], window[-2] if len(window) > 1 else None, window[0]
    sale = now.sale
    units = Units(
        reserved=sale.counters["u_reserved"],
        confirmed=sale.counters["u_confirmed"],
        cancelled=sale.counters["u_cancelled"],
        expired=sale.counters["u_expired"],
    )
    return LiveEvent(
        sale_id=sale.sale_id,
        at=format_ms(sale.read_at),
        status=sale.status,
        stock_total=sale.stock_total,
        stock_left=sale.stock_left,
        paused=sale.paused,
        units=units,
        attempts=sale.counters["attempts"],
        shed=sale.counters["shed"],
        per_second=_rates(before, now),
        latency_seconds=_latency(oldest, now),
        waiting_room=_room(before, now),
        order_backlog=now.backlog,
        breaker=BREAKER_STATES.get(now.breaker, "open"),
    )


def _per_second(before: Reading | None, now: Reading, old: float, new: float) -> float:
    if before is None or now.at <= before.at:
        return 0.0
    return round(max(0.0, new - old) / (now.at - before.at), 1)


def _rates(before: Reading | None, now: Reading) -> Rates:
    def rate(name: str) -> float:
        old = before.sale.counters.get(name, 0) if before else 0
        return _per_second(before, now, old, now.sale.counters.get(name, 0))

    by_reason = {
        reason: _per_second(before, now, before.sale.shed_by.get(reason, 0) if before else 0, n)
        for reason, n in sorted(now.sale.shed_by.items())
    }
    return Rates(
        attempts=rate("attempts"),
        reserved=rate("o_reserved"),
        rejected=rate("rejected"),
        shed=rate("shed"),
        shed_by_reason=by_reason,
    )


def _room(before: Reading | None, now: Reading) -> Room | None:
    room = now.sale.waiting_room
    if not room.enabled:
        return None
    admitted = now.sale.queue.admitted
    old = before.sale.queue.admitted if before else admitted
    return Room(
        waiting=max(0, now.sale.queue.waiting),
        admitted=admitted,
        admitted_per_second=_per_second(before, now, old, admitted),
        admit_per_second=room.admit_per_second,
    )


def _latency(oldest: Reading, now: Reading) -> Latency:
    # A first reading has no window: the histogram's totals since the start are not "now".
    delta = difference(oldest.latency, now.latency) if oldest is not now else ()
    answered = int(delta[-1][1]) if delta else 0
    return Latency(
        p50=quantile(delta, 0.5),
        p99=quantile(delta, 0.99),
        answered=answered,
        window_seconds=round(now.at - oldest.at, 1),
    )


def difference(old: Buckets, new: Buckets) -> Buckets:
    """The observations made between two readings of a cumulative histogram (a process that
    restarted in between can make a bucket go down: counted as nothing)."""
    before: Mapping[float, float] = dict(old)
    return tuple((bound, max(0.0, count - before.get(bound, 0.0))) for bound, count in new)


def quantile(buckets: Buckets, q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in; the last
    finite bound when it falls in +Inf; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside > 0 else 1.0
            return round(lower_bound + (bound - lower_bound) * share, 6)
        lower_bound, lower_count = bound, count
    return lower_bound
