"""RFC 9457 problem documents: every non-2xx answer, with the code API.md names."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping

import msgspec
from aiohttp import web

from flashsale.errors import FlashsaleError
from flashsale.store.outcomes import Rejected, Rejection

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:flashsale:problem:"


class ProblemCode(enum.StrEnum):
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    SALE_NOT_STARTED = "sale_not_started"
    SALE_ENDED = "sale_ended"
    SALE_PAUSED = "sale_paused"
    SOLD_OUT = "sold_out"
    USER_LIMIT_REACHED = "user_limit_reached"
    HOLD_LIMIT_REACHED = "hold_limit_reached"
    QUEUE_REQUIRED = "queue_required"
    ORDER_NOT_PENDING = "order_not_pending"
    SALE_EXISTS = "sale_exists"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    # Not in the contract's table: answered only for a bug, never by design.
    INTERNAL_ERROR = "internal_error"


# (status, title) of each code, in one place.
_CATALOGUE: dict[ProblemCode, tuple[int, str]] = {
    ProblemCode.INVALID_REQUEST: (400, "The request is invalid"),
    ProblemCode.UNAUTHORIZED: (401, "A valid bearer token is required"),
    ProblemCode.NOT_FOUND: (404, "Not found"),
    ProblemCode.SALE_NOT_STARTED: (409, "The sale has not started"),
    ProblemCode.SALE_ENDED: (409, "The sale has ended"),
    ProblemCode.SALE_PAUSED: (409, "The sale is paused"),
    ProblemCode.SOLD_OUT: (409, "Sold out"),
    ProblemCode.USER_LIMIT_REACHED: (409, "Per-user limit reached"),
    ProblemCode.HOLD_LIMIT_REACHED: (409, "Per-address hold limit reached"),
    ProblemCode.QUEUE_REQUIRED: (403, "The sale's waiting room admits buyers"),
    ProblemCode.ORDER_NOT_PENDING: (409, "The order is no longer pending"),
    ProblemCode.SALE_EXISTS: (409, "A sale with this id exists"),
    ProblemCode.IDEMPOTENCY_CONFLICT: (422, "Idempotency-Key reused with a different body"),
    ProblemCode.PAYLOAD_TOO_LARGE: (413, "The request body is too large"),
    ProblemCode.RATE_LIMITED: (429, "Too many requests"),
    ProblemCode.OVERLOADED: (503, "The engine is overloaded or its store is unavailable"),
    ProblemCode.INTERNAL_ERROR: (500, "Internal error"),
}


def status_of(code: ProblemCode) -> int:
    return _CATALOGUE[code][0]


class ProblemDocument(msgspec.Struct):
    type: str
    title: str
    status: int
    detail: str
    code: ProblemCode
    instance: str | None = None


class ProblemError(FlashsaleError):
    """Raised by handlers; the error middleware turns it into a problem document."""

    def __init__(
        self,
        code: ProblemCode,
        detail: str,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
        *,
        counted: bool = False,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        # Only HTTP-level answers (405) override the status the code implies.
        self.status = status or status_of(code)
        # A refusal its own counter has counted (shed, sold out from the flag): the HTTP
        # metrics leave it out, so that counting it costs one increment, not three.
        self.counted = counted

    def document(self, instance: str | None = None) -> ProblemDocument:
        return ProblemDocument(
            type=TYPE_PREFIX + self.code.value,
            title=_CATALOGUE[self.code][1],
            status=self.status,
            detail=self.detail,
            code=self.code,
            instance=instance,
        )

    def response(self, instance: str | None = None) -> web.Response:
        return web.Response(
            status=self.status,
            body=self.body(instance),
            content_type=PROBLEM_CONTENT_TYPE,
            headers=self.headers,
        )

    def body(self, instance: str | None = None) -> bytes:
        """The encoded document. The refusals an overloaded engine sends by the thousand
        (shed, rate limited, sold out) come from bytes encoded once per kind, with only
        the instance spliced in: they must cost less than the work they turn away."""
        if self.code not in _CANNED_CODES or instance is None:
            return msgspec.json.encode(self.document(instance))
        key = (self.code, self.status, self.detail)
        prefix = _canned_prefixes.get(key)
        if prefix is None:
            whole = msgspec.json.encode(self.document(""))
            assert whole.endswith(b'"instance":""}')  # instance is the last field
            prefix = _canned_prefixes[key] = whole[: -len(b'""}')]
        return prefix + _json_string(instance) + b"}"


# Codes whose documents are encoded once per (code, status, detail): all of them refusals
# with a fixed set of details, so the cache stays small.
_CANNED_CODES = frozenset({ProblemCode.OVERLOADED, ProblemCode.RATE_LIMITED, ProblemCode.SOLD_OUT})
_canned_prefixes: dict[tuple[ProblemCode, int, str], bytes] = {}
_json_string = msgspec.json.Encoder().encode


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; never tell a client 0."""
    return str(max(1, math.ceil(seconds)))


_REJECTION_DETAILS: dict[Rejection, str] = {
    Rejection.NOT_FOUND: "no sale with this id",
    Rejection.SALE_NOT_STARTED: "the sale has not opened yet",
    Rejection.SALE_ENDED: "the sale has ended",
    Rejection.SALE_PAUSED: "the sale is paused by the operator",
    Rejection.SOLD_OUT: "not enough stock left for this quantity",
    Rejection.USER_LIMIT_REACHED: "this user already holds the most units allowed per user",
    Rejection.HOLD_LIMIT_REACHED: (
        "this client address already holds the most unpaid units the sale allows per address"
    ),
    Rejection.IDEMPOTENCY_CONFLICT: "this Idempotency-Key was used with a different body",
    Rejection.SALE_EXISTS: "a sale with this id exists already",
    Rejection.INVALID_WINDOW: "ends_at must be after starts_at",
    Rejection.ORDER_NOT_PENDING: "the order is no longer reserved",
    Rejection.OVERLOADED: "the order store is behind; retry after the given delay",
    Rejection.FENCED: "this attempt was settled as never made and took nothing; retry",
    Rejection.QUEUE_REQUIRED: (
        "this sale's waiting room is on: join its queue and send the Purchase-Token it gives "
        "(valid for this user and sale, until it expires)"
    ),
    Rejection.ROOM_OFF: "this sale has no waiting room",
    Rejection.QUEUE_NOT_OPEN: "the sale's waiting room has not opened yet",
    Rejection.SHARDED: "the sale's stock moved between its shards; retry",
    Rejection.NOT_FOR_SHARDS: (
        "holds_per_address and waiting_room are not available on a sale of several shards"
    ),
}
# Script refusals reported under another code than their own.
_CODE_OF: dict[Rejection, ProblemCode] = {
    Rejection.INVALID_WINDOW: ProblemCode.INVALID_REQUEST,
    Rejection.NOT_FOR_SHARDS: ProblemCode.INVALID_REQUEST,
    # Only if the engine's own resend were refused again: nothing was taken.
    Rejection.SHARDED: ProblemCode.OVERLOADED,
    Rejection.OVERLOADED: ProblemCode.OVERLOADED,
    Rejection.FENCED: ProblemCode.OVERLOADED,
    Rejection.ROOM_OFF: ProblemCode.NOT_FOUND,
    Rejection.QUEUE_NOT_OPEN: ProblemCode.SALE_NOT_STARTED,
}
# Refusals that took nothing and are answered 503: retrying later is always safe.
_OVERLOADED = frozenset({Rejection.OVERLOADED, Rejection.FENCED, Rejection.SHARDED})
# Seconds a shopper should wait after a backlog refusal: the worker drains thousands of
# events a second, so the backlog is usually gone by then.
BACKLOG_RETRY_AFTER = "1"


def rejection_problem(rejected: Rejected) -> ProblemError:
    """The one place a script's refusal becomes an HTTP answer."""
    code = _CODE_OF.get(rejected.reason) or ProblemCode(rejected.reason.value)
    headers = {"Idempotent-Replayed": "true"} if rejected.replayed else {}
    if rejected.reason in _OVERLOADED:
        headers["Retry-After"] = BACKLOG_RETRY_AFTER
    detail = _REJECTION_DETAILS[rejected.reason]
    return ProblemError(code, detail, headers, counted=rejected.from_flag)
