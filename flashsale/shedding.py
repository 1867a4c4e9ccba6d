"""Shedding work early and cheaply: the per-process admission state and its middleware.

Before a shopper's request does any work it must pass the client IP's token bucket and the
in-flight bound, and it is answered by its deadline whatever Redis does. Confirm and cancel
skip the IP bucket and may use the in-flight reserve: they are shed last.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from flashsale.admission import (
    InFlightLimit,
    Priority,
    RateLimiter,
    client_ip,
    retry_after_header,
)
from flashsale.local_counts import LocalCounts
from flashsale.metrics import Metrics
from flashsale.middleware import Handler
from flashsale.problems import Problem, ProblemCode
from flashsale.settings import Settings
from flashsale.soldout import SoldOutFlags

SHOPPER_PREFIX = "/v1/"
OVERLOADED_RETRY_AFTER = "1"


@dataclass
class Admission:
    settings: Settings
    metrics: Metrics
    in_flight: InFlightLimit = field(init=False)
    users: RateLimiter = field(init=False)
    ips: RateLimiter = field(init=False)
    sold_out: SoldOutFlags = field(init=False)
    counts: LocalCounts = field(default_factory=LocalCounts)

    def __post_init__(self) -> None:
        s = self.settings
        self.in_flight = InFlightLimit(s.admission_max_in_flight, s.admission_finish_reserve)
        self.users = RateLimiter(s.admission_user_rate_per_second, s.admission_user_burst)
        self.ips = RateLimiter(s.admission_ip_rate_per_second, s.admission_ip_burst)
        self.sold_out = SoldOutFlags(s.admission_sold_out_ttl_seconds)
        self._trusted = s.trusted_proxies

    def shed(self, reason: str, sale_id: str | None) -> None:
        self.metrics.shed.labels(reason).inc()
        if sale_id is not None:
            self.counts.shed(sale_id)

    def client(self, request: web.Request) -> str:
        return client_ip(request.remote, request.headers.get("X-Forwarded-For"), self._trusted)


ADMISSION = web.AppKey("admission", Admission)


def overloaded(detail: str, retry_after: str = OVERLOADED_RETRY_AFTER) -> Problem:
    return Problem(ProblemCode.OVERLOADED, detail, {"Retry-After": retry_after})


def rate_limited(detail: str, wait: float) -> Problem:
    return Problem(ProblemCode.RATE_LIMITED, detail, {"Retry-After": retry_after_header(wait)})


@web.middleware
async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(SHOPPER_PREFIX):
        return await handler(request)
    admission = request.app[ADMISSION]
    finishing = request.method == "POST" and request.path.endswith(("/confirm", "/cancel"))
    purchase_of = request.match_info.get("sale_id") if request.path.endswith("/purchases") else None
    if not finishing:
        wait = admission.ips.take(admission.client(request))
        if wait:
            admission.shed("rate_limited_ip", purchase_of)
            raise rate_limited("too many requests from this address", wait)
    priority = Priority.FINISH if finishing else Priority.NORMAL
    if not admission.in_flight.try_enter(priority):
        admission.shed("in_flight", purchase_of)
        raise overloaded("the engine is at capacity; retry shortly")
    admission.metrics.in_flight.inc()
    try:
        async with asyncio.timeout(admission.settings.admission_deadline_seconds) as deadline:
            return await handler(request)
    except TimeoutError:
        if not deadline.expired():
            raise
        admission.shed("deadline", purchase_of)
        raise overloaded("no answer within the request deadline; retry shortly") from None
    finally:
        admission.in_flight.leave()
        admission.metrics.in_flight.dec()
