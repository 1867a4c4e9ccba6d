"""The per-process admission state: what a request must pass before it does any work.

A shopper's request passes the client address's token bucket and the in-flight bound, and is
answered by its deadline whatever Redis does. Confirm and cancel skip the address bucket and
may use the in-flight reserve: they finish a purchase, so they are shed last. Every refusal
is a RefusedError: nothing was taken, and retrying later is safe.
"""

from __future__ import annotations

from flashsale.admission.limits import InFlightLimit, Priority, RateLimiter, client_ip
from flashsale.admission.local_counts import LocalCounts
from flashsale.admission.soldout import SoldOutFlags
from flashsale.errors import OverloadedError, RateLimitedError
from flashsale.metrics import Metrics
from flashsale.settings import Settings

# Seconds a shed client is told to wait: capacity frees up within about that long.
OVERLOADED_RETRY_AFTER_SECONDS = 1.0


class Admission:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        limits = settings.admission
        self.metrics = metrics
        self.deadline_seconds = limits.deadline_seconds
        self.in_flight = InFlightLimit(limits.max_in_flight, limits.finish_reserve)
        self.users = RateLimiter(limits.user_rate_per_second, limits.user_burst)
        self.ips = RateLimiter(limits.ip_rate_per_second, limits.ip_burst)
        self.sold_out = SoldOutFlags(limits.sold_out_ttl_seconds)
        self.counts = LocalCounts()
        self._trusted = settings.trusted_proxies

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        return client_ip(peer, forwarded_for, self._trusted)

    def enter(self, client: str, *, finishing: bool, purchase_of: str | None) -> None:
        """Lets a request in, or raises RefusedError. `purchase_of` names the sale of a
        purchase (its refusals count toward that sale). A request let in must `leave()`."""
        if not finishing and self.ips.enabled:
            wait = self.ips.take(client)
            if wait:
                self.shed("rate_limited_ip", purchase_of)
                raise RateLimitedError(
                    "rate_limited_ip", "too many requests from this address", wait
                )
        if not self.in_flight.try_enter(Priority.FINISH if finishing else Priority.NORMAL):
            self.shed("in_flight", purchase_of)
            raise self.overloaded("in_flight", "the engine is at capacity; retry shortly")

    def leave(self) -> None:
        self.in_flight.leave()

    def check_user_rate(self, sale_id: str, user_id: str) -> None:
        """A user's purchase attempts on one sale have a bucket of their own."""
        wait = self.users.take(f"{sale_id}\n{user_id}")
        if wait:
            self.shed("rate_limited_user", sale_id)
            raise RateLimitedError(
                "rate_limited_user", "too many purchase attempts by this user", wait
            )

    def shed(self, reason: str, sale_id: str | None) -> None:
        self.metrics.shed.labels(reason).inc()
        if sale_id is not None:
            self.counts.shed(sale_id)

    @staticmethod
    def overloaded(reason: str, detail: str) -> OverloadedError:
        return OverloadedError(reason, detail, OVERLOADED_RETRY_AFTER_SECONDS)
