"""Admission control: per-key token buckets and a bound on work in flight, with an
injected clock so the logic is tested without a network or a real clock."""

from __future__ import annotations

import enum
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class TokenBucket:
    tokens: float
    updated: float


class RateLimiter:
    """One token bucket per key (a user, a client IP): `rate` tokens a second, `burst` at most.

    Buckets that have refilled completely are forgotten, so memory follows the number of
    recently active keys, not of all keys ever seen.
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._pruned_at = clock()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def take(self, key: str) -> float:
        """Takes a token: returns 0 when allowed, else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        self._prune(now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._rate

    def _prune(self, now: float) -> None:
        full_after = self._burst / self._rate
        if now - self._pruned_at < full_after:
            return
        self._pruned_at = now
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}


class Priority(enum.IntEnum):
    NORMAL = 0
    FINISH = 1  # confirm and cancel finish a purchase: shed last


class InFlightLimit:
    """Bounds the requests a process works on at once. The last `reserve` share of the
    bound is kept for requests that finish a purchase."""

    def __init__(self, limit: int, reserve: float) -> None:
        self._reserve = reserve
        self.current = 0
        self.set_limit(limit)

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        """A new bound (the adaptive limit moves it); requests in flight stay."""
        self._limit = limit
        self._normal_limit = max(1, int(limit * (1 - self._reserve)))

    def full(self, priority: Priority) -> bool:
        """Whether a request of this priority would be refused now."""
        return self.current >= (self._limit if priority is Priority.FINISH else self._normal_limit)

    def try_enter(self, priority: Priority) -> bool:
        bound = self._limit if priority is Priority.FINISH else self._normal_limit
        if self.current >= bound:
            return False
        self.current += 1
        return True

    def leave(self) -> None:
        self.current -= 1


def client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted_proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The client's address: the peer, or — only when the peer is a trusted proxy — the
    right-most address in X-Forwarded-For that is not itself a trusted proxy."""
    if not peer:
        return "unknown"
    if not forwarded_for or not _trusted(peer, trusted_proxies):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, trusted_proxies):
            return hop
    return peer


def _trusted(
    address: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
