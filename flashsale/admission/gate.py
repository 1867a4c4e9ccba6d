"""The per-process admission state: what a request must pass before it does any work.

A shopper's request is judged, in this order, by its age (queueing delay: CoDel, and never
past its deadline), the client address's token bucket, and the in-flight bound (adaptive:
it follows latency). It is answered by its deadline, counted from when its head arrived,
whatever Redis does. Confirm and cancel skip the address bucket and may use the in-flight
reserve: they finish a purchase, so they are shed last. Every refusal is a RefusedError:
nothing was taken, and retrying later is safe.
"""

from __future__ import annotations

from flashsale.admission.adaptive import AdaptiveLimit
from flashsale.admission.limits import InFlightLimit, Priority, RateLimiter, client_ip
from flashsale.admission.local_counts import LocalCounts
from flashsale.admission.queue_delay import QueueDelay
from flashsale.admission.soldout import SoldOutFlags
from flashsale.errors import OverloadedError, RateLimitedError
from flashsale.metrics import Metrics
from flashsale.settings import Settings

# Seconds a shed client is told to wait: capacity frees up within about that long.
OVERLOADED_RETRY_AFTER_SECONDS = 1.0
AT_CAPACITY = "the engine is at capacity; retry shortly"


class Admission:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        limits = settings.admission
        self.metrics = metrics
        self.deadline_seconds = limits.deadline_seconds
        self.adaptive: AdaptiveLimit | None = None
        if limits.adaptive:
            floor = min(limits.min_in_flight, limits.max_in_flight)
            self.adaptive = AdaptiveLimit(
                floor=floor, ceiling=limits.max_in_flight, initial=max(floor, 64)
            )
        self.in_flight = InFlightLimit(
            self.adaptive.limit if self.adaptive else limits.max_in_flight, limits.finish_reserve
        )
        self.queue = QueueDelay(
            limits.queue_target_ms / 1000, limits.queue_interval_ms / 1000, self.deadline_seconds
        )
        self.users = RateLimiter(limits.user_rate_per_second, limits.user_burst)
        self.ips = RateLimiter(limits.ip_rate_per_second, limits.ip_burst)
        self.sold_out = SoldOutFlags(limits.sold_out_ttl_seconds)
        self.counts = LocalCounts()
        self.overload_sheds = 0
        self._trusted = settings.trusted_proxies

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        return client_ip(peer, forwarded_for, self._trusted)

    def check_age(self, waited: float, now: float, purchase_of: str | None) -> None:
        """Refuses a request that waited too long before admission saw it (QueueDelay)."""
        if self.queue.refuse(waited, now):
            self.shed("queue_delay", purchase_of)
            raise self.overloaded("queue_delay", AT_CAPACITY)

    def check_client(self, client: str, *, finishing: bool, purchase_of: str | None) -> None:
        """The client address's token bucket (not for confirm and cancel)."""
        if not finishing and self.ips.enabled:
            wait = self.ips.take(client)
            if wait:
                self.shed("rate_limited_ip", purchase_of)
                raise RateLimitedError(
                    "rate_limited_ip", "too many requests from this address", wait
                )

    def enter(self, *, finishing: bool, purchase_of: str | None) -> int:
        """Takes an in-flight slot, or raises OverloadedError. Returns the requests in flight
        with this one. A request let in must `leave()`."""
        if not self.in_flight.try_enter(Priority.FINISH if finishing else Priority.NORMAL):
            self.shed("in_flight", purchase_of)
            raise self.overloaded("in_flight", AT_CAPACITY)
        return self.in_flight.current

    def leave(self, took: float, in_flight: int, now: float) -> None:
        """A request let in is done: it took `took` seconds with `in_flight` in flight."""
        self.in_flight.leave()
        if self.adaptive is not None:
            self.adaptive.sample(took, in_flight, now)
            self.in_flight.set_limit(self.adaptive.limit)

    def check_user_rate(self, sale_id: str, user_id: str) -> None:
        """A user's purchase attempts on one sale have a bucket of their own."""
        wait = self.users.take(f"{sale_id}\n{user_id}")
        if wait:
            self.shed("rate_limited_user", sale_id)
            raise RateLimitedError(
                "rate_limited_user", "too many purchase attempts by this user", wait
            )

    def shed(self, reason: str, sale_id: str | None) -> None:
        self.metrics.count_shed(reason)
        if sale_id is not None:
            self.counts.shed(sale_id, reason)
        if not reason.startswith("rate_limited"):
            self.overload_sheds += 1  # the engine's own limits, not a client's

    def take_overload_sheds(self) -> int:
        """Requests the engine shed for its own sake (in-flight, deadline, queueing delay)
        since the last call: what a waiting room's own pace listens to."""
        sheds, self.overload_sheds = self.overload_sheds, 0
        return sheds

    @staticmethod
    def overloaded(reason: str, detail: str) -> OverloadedError:
        return OverloadedError(reason, detail, OVERLOADED_RETRY_AFTER_SECONDS)
