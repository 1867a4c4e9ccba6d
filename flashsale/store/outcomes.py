"""What a state-changing script decided: each Lua return code maps to one value here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Rejection(enum.StrEnum):
    """A script's refusal. The values are the Lua return codes and the API's error codes."""

    NOT_FOUND = "not_found"
    SALE_NOT_STARTED = "sale_not_started"
    SALE_ENDED = "sale_ended"
    SALE_PAUSED = "sale_paused"
    SOLD_OUT = "sold_out"
    USER_LIMIT_REACHED = "user_limit_reached"
    HOLD_LIMIT_REACHED = "hold_limit_reached"
    QUEUE_REQUIRED = "queue_required"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    SALE_EXISTS = "sale_exists"
    INVALID_WINDOW = "invalid_window"
    ORDER_NOT_PENDING = "order_not_pending"
    OVERLOADED = "overloaded"
    # The engine settled the attempt as never made (it had answered 202 pending) before the
    # attempt reached Redis: nothing was taken.
    FENCED = "fenced"
    # The waiting room's refusals of a join.
    ROOM_OFF = "room_off"
    QUEUE_NOT_OPEN = "queue_not_open"
    # A change a sale of several shards does not take (its buckets cannot share one cap).
    NOT_FOR_SHARDS = "not_for_shards"
    # An attempt sent to a sale of several shards, not to the user's bucket: nothing taken,
    # and the engine sends it on (never a shopper's answer).
    SHARDED = "sharded"


@dataclass(slots=True)
class Attempt:
    """One purchase attempt, named (order_id) before it is sent so a retry is recognised."""

    order_id: str
    user_id: str
    quantity: int
    idempotency_key: str = ""  # "" without one
    fingerprint: str = ""  # of the body, compared under the idempotency key
    address: str = ""  # the client's, for the sale's holds_per_address cap; "" unknown
    queue_pass: bool = False  # carries a Purchase-Token the app verified (waiting room)
    # Whether the attempt left for Redis (so it may have taken effect whatever happens to
    # its caller), and whether the call that carried it has ended, either way.
    sent: bool = False
    finished: bool = False


@dataclass(slots=True)
class Reservation:
    order_id: str
    sale_id: str
    user_id: str
    quantity: int
    created_at: int
    expires_at: int
    replayed: bool
    # After this attempt; -1 when unknown (a replay). A hint for the sold-out flag, not part
    # of the outcome's identity.
    stock_left: int = field(default=-1, compare=False)


@dataclass(slots=True)
class Rejected:
    reason: Rejection
    replayed: bool = False
    stock_left: int = field(default=-1, compare=False)
    # Answered from the process's sold-out flag, and counted there (not by Redis).
    from_flag: bool = field(default=False, compare=False)


@dataclass(slots=True)
class Pending:
    """The attempt reached Redis, but its outcome is not known yet (Redis stalled, a reply
    was lost): the engine settles it by itself, as held or as never made."""

    order_id: str
    sale_id: str
    user_id: str
    quantity: int
    stock_left: int = field(default=-1, compare=False)


PurchaseOutcome = Reservation | Rejected


@dataclass(slots=True)
class Settled:
    """A confirm or cancel that took effect now, or earlier (replayed)."""

    status: str
    replayed: bool


SettleOutcome = Settled | Rejected
