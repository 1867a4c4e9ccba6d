"""The live event's arithmetic: rates between readings, quantiles of the histogram's growth."""

from __future__ import annotations

import math
from dataclasses import replace

from flashsale.api.live.figures import Reading, difference, live_event, quantile
from flashsale.records import QueueCounts, SaleRecord, WaitingRoom

INF = math.inf


def sale(**counters: int) -> SaleRecord:
    base = dict.fromkeys(
        ("attempts", "rejected", "shed", "u_reserved", "u_confirmed", "u_cancelled",
         "u_expired", "o_reserved", "o_confirmed", "o_cancelled", "o_expired"), 0,
    )  # fmt: skip
    return SaleRecord(
        sale_id="s", sku="k", name="n", ref="r", stock_total=10, stock_left=10,
        starts_at=0, ends_at=10**13, ended_at=0, paused=False, per_user_limit=1,
        hold_seconds=600, holds_per_address=None, counters={**base, **counters},
        read_at=1_000,
    )  # fmt: skip


def test_quantiles_interpolate_within_the_bucket_as_prometheus_does() -> None:
    buckets = ((0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (INF, 100.0))
    assert quantile(buckets, 0.5) == 0.01
    assert quantile(buckets, 0.7) == 0.055  # halfway through the 0.01-0.1 bucket
    assert quantile(buckets, 0.99) == 0.91
    assert quantile(((0.5, 0.0), (INF, 4.0)), 0.5) == 0.5  # in +Inf: the last finite bound
    assert quantile(((0.5, 0.0), (INF, 0.0)), 0.5) is None


def test_the_window_counts_only_what_was_observed_in_it() -> None:
    old = ((0.01, 10.0), (0.1, 10.0), (INF, 10.0))
    new = ((0.01, 10.0), (0.1, 14.0), (INF, 14.0))
    assert difference(old, new) == ((0.01, 0.0), (0.1, 4.0), (INF, 4.0))
    # A process that restarted between the readings: its buckets went down, not negative.
    assert difference(new, old) == ((0.01, 0.0), (0.1, 0.0), (INF, 0.0))


def test_rates_are_per_second_between_the_last_two_readings() -> None:
    latency = ((0.01, 0.0), (INF, 0.0))
    first = Reading(at=10.0, sale=sale(), latency=latency, breaker=0, backlog=0)
    later = replace(
        sale(attempts=300, shed=100, o_reserved=8, u_reserved=8),
        shed_by={"in_flight": 60, "rate_limited_ip": 40},
        stock_left=2,
    )
    second = Reading(at=12.0, sale=later, latency=((0.01, 8.0), (INF, 8.0)), breaker=2, backlog=3)
    event = live_event([first, second])
    assert event.per_second.attempts == 150.0
    assert event.per_second.shed == 50.0
    assert event.per_second.reserved == 4.0
    assert event.per_second.shed_by_reason == {"in_flight": 30.0, "rate_limited_ip": 20.0}
    assert (event.stock_left, event.units.reserved, event.order_backlog) == (2, 8, 3)
    assert event.breaker == "open"
    assert event.latency_seconds.answered == 8
    assert event.latency_seconds.p50 == 0.005
    assert event.waiting_room is None
    # The first event has nothing to compare with: rates of 0, not of everything so far.
    assert live_event([second]).per_second.attempts == 0.0


def test_a_waiting_room_reports_its_measured_pace() -> None:
    room = WaitingRoom(enabled=True, admit_per_second=None)

    a = replace(sale(), waiting_room=room, queue=QueueCounts(waiting=100, admitted=0))
    b = replace(sale(), waiting_room=room, queue=QueueCounts(waiting=80, admitted=20))
    latency = ((INF, 0.0),)
    event = live_event([Reading(0.0, a, latency, 0, 0), Reading(2.0, b, latency, 0, 0)])
    assert event.waiting_room is not None
    assert (event.waiting_room.waiting, event.waiting_room.admitted) == (80, 20)
    assert event.waiting_room.admitted_per_second == 10.0
    assert event.waiting_room.admit_per_second is None
