"""Shedding work early and cheaply: the per-process admission state and its middleware.

Before a shopper's request does any work it must pass the client IP's token bucket and the
in-flight bound, and it is answered by its deadline whatever Redis does. Confirm and cancel
skip the IP bucket and may use the in-flight reserve: they are shed last.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from flashsale.admission import (
    InFlightLimit,
    Priority,
    RateLimiter,
    client_ip,
    retry_after_header,
)
from flashsale.local_counts import LocalCounts
from flashsale.metrics import Metrics
from flashsale.middleware import Handler, admin_checker, is_admin_path
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
DEADLINE = web.RequestKey("deadline", float)


def overloaded(detail: str, retry_after: str = OVERLOADED_RETRY_AFTER) -> Problem:
    return Problem(ProblemCode.OVERLOADED, detail, {"Retry-After": retry_after})


def rate_limited(detail: str, wait: float) -> Problem:
    return Problem(ProblemCode.RATE_LIMITED, detail, {"Retry-After": retry_after_header(wait)})


def gate(admin_token: str) -> Middleware:
    """The one middleware inside `front`: shopper routes pass admission, operator routes
    the token check; everything else goes straight through."""
    check_admin = admin_checker(admin_token)

    @web.middleware
    async def gate_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(SHOPPER_PREFIX):
            return await admit(request, handler)
        if is_admin_path(request.path):
            check_admin(request)
        return await handler(request)

    return gate_request


async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
    admission = request.app[ADMISSION]
    finishing = request.method == "POST" and request.path.endswith(("/confirm", "/cancel"))
    purchase_of = request.match_info.get("sale_id") if request.path.endswith("/purchases") else None
    if not finishing and admission.ips.enabled:
        wait = admission.ips.take(admission.client(request))
        if wait:
            admission.shed("rate_limited_ip", purchase_of)
            raise rate_limited("too many requests from this address", wait)
    priority = Priority.FINISH if finishing else Priority.NORMAL
    if not admission.in_flight.try_enter(priority):
        admission.shed("in_flight", purchase_of)
        raise overloaded("the engine is at capacity; retry shortly")
    loop = asyncio.get_running_loop()
    # No timer yet: most answers need no Redis at all (sold out, shed). Handlers arm it
    # around the work that may wait, with `within_deadline`.
    request[DEADLINE] = deadline = loop.time() + admission.settings.admission_deadline_seconds
    try:
        return await handler(request)
    except TimeoutError:
        if loop.time() < deadline:
            raise
        admission.shed("deadline", purchase_of)
        raise overloaded("no answer within the request deadline; retry shortly") from None
    finally:
        admission.in_flight.leave()


def within_deadline(request: web.Request) -> asyncio.Timeout:
    """The request's deadline as a timeout scope: work inside it is cancelled when the
    deadline passes (queued purchases are then dropped unsent) and the request answered
    503 overloaded."""
    return asyncio.timeout_at(request[DEADLINE])
