"""Pure admission logic with an injected clock: token buckets, in-flight bound, client IP."""

from __future__ import annotations

import ipaddress

import pytest

from flashsale.admission.gate import Admission
from flashsale.admission.limits import (
    InFlightLimit,
    Priority,
    RateLimiter,
    client_ip,
)
from flashsale.api.problems import retry_after_header
from flashsale.errors import OverloadedError, RateLimitedError
from flashsale.metrics import Metrics
from flashsale.settings import load_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take("u") for _ in range(3)] == [0, 0, 0]
    wait = limiter.take("u")
    assert wait == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("u") == 0
    assert limiter.take("u") > 0


def test_buckets_are_per_key() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    assert limiter.take("a") == 0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0


def test_refusals_do_not_drain_the_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    limiter.take("u")
    for _ in range(50):
        limiter.take("u")  # hammering while empty
    clock.now += 1.0
    assert limiter.take("u") == 0


def test_a_zero_rate_turns_limiting_off() -> None:
    limiter = RateLimiter(rate=0, burst=1, clock=Clock())
    assert all(limiter.take("u") == 0 for _ in range(100))


def test_idle_buckets_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=10, clock=clock)
    for i in range(1000):
        limiter.take(f"user-{i}")
    clock.now += 5
    limiter.take("someone")
    assert len(limiter._buckets) == 1


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.2) == "2"
    assert retry_after_header(3.0) == "3"


def test_in_flight_keeps_a_reserve_for_finishing_purchases() -> None:
    limit = InFlightLimit(limit=10, reserve=0.2)
    assert all(limit.try_enter(Priority.NORMAL) for _ in range(8))
    assert not limit.try_enter(Priority.NORMAL)
    assert limit.try_enter(Priority.FINISH)
    assert limit.try_enter(Priority.FINISH)
    assert not limit.try_enter(Priority.FINISH)
    limit.leave()
    assert limit.try_enter(Priority.FINISH)


TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.1.2.3", "198.51.100.7", "198.51.100.7"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.7, 10.9.9.9", "198.51.100.7"),  # spoofed left part
        ("127.0.0.1", "10.0.0.5", "127.0.0.1"),  # only proxies: the peer
        ("10.1.2.3", "not-an-ip", "not-an-ip"),
    ],
)
def test_client_ip_believes_only_trusted_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    assert client_ip(peer, forwarded, TRUSTED) == expected


def test_only_the_engines_own_sheds_steer_a_waiting_rooms_pace() -> None:
    settings = load_settings(
        env={}, overrides={"admission_max_in_flight": 1, "admission_user_rate_per_second": 1.0}
    )
    admission = Admission(settings, Metrics())
    admission.enter(finishing=False, purchase_of="s")
    with pytest.raises(OverloadedError):
        admission.enter(finishing=False, purchase_of="s")  # the engine at its bound
    # A client over its rate is its own doing, not the engine's.
    for _ in range(settings.admission.user_burst):
        admission.check_user_rate("s", "eager")
    with pytest.raises(RateLimitedError):
        admission.check_user_rate("s", "eager")
    assert admission.take_overload_sheds() == 1
    assert admission.take_overload_sheds() == 0  # counted once
