"""What the engine knows about sales and orders, as Redis and the order store hold them
(times in integer milliseconds since the epoch). The API renders these; it does not own them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from msgspec import Struct


class SaleStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    PAUSED = "paused"
    SOLD_OUT = "sold_out"
    ENDED = "ended"


class OrderStatus(enum.StrEnum):
    # Only ever an answer's: an attempt that reached Redis with an outcome not known yet.
    # No order is stored pending, and no event carries it.
    PENDING = "pending"
    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True)
class WaitingRoom:
    """A sale's waiting room, as the operator set it."""

    enabled: bool = False
    admit_per_second: float | None = None  # None: the engine's pace
    token_ttl_seconds: int = 120
    queue_opens_seconds: int = 900


@dataclass(frozen=True)
class NewSale:
    """A sale an operator schedules, validated by the API before it reaches the store."""

    sku: str
    name: str
    stock: int
    starts_at: int
    ends_at: int
    per_user_limit: int
    hold_seconds: int
    holds_per_address: int | None = None  # None: no cap
    waiting_room: WaitingRoom = WaitingRoom()
    shards: int = 1  # > 1: the stock lives in that many buckets, on different slots


@dataclass(frozen=True)
class SaleChange:
    """An operator's change to a sale; None leaves a field as it is."""

    add_stock: int | None = None
    starts_at: int | None = None
    ends_at: int | None = None
    paused: bool | None = None
    per_user_limit: int | None = None
    holds_per_address: int | None = None  # 0 lifts the cap
    waiting_room: WaitingRoom | None = None


@dataclass(frozen=True)
class QueueCounts:
    waiting: int  # joined, neither admitted nor gone
    admitted: int


@dataclass(frozen=True)
class SaleRecord:
    """A sale as Redis holds it, with the Redis time it was read at."""

    sale_id: str
    sku: str
    name: str
    ref: str
    stock_total: int
    stock_left: int
    starts_at: int
    ends_at: int
    ended_at: int
    paused: bool
    per_user_limit: int
    hold_seconds: int
    holds_per_address: int | None  # None: no cap
    counters: dict[str, int]
    read_at: int
    shed_by: dict[str, int] = field(default_factory=dict)  # counters["shed"] by reason
    waiting_room: WaitingRoom = WaitingRoom()
    queue: QueueCounts = QueueCounts(0, 0)

    @property
    def status(self) -> SaleStatus:
        if self.ended_at or self.read_at >= self.ends_at:
            return SaleStatus.ENDED
        if self.paused:
            return SaleStatus.PAUSED
        if self.read_at < self.starts_at:
            return SaleStatus.SCHEDULED
        if self.stock_left == 0:
            return SaleStatus.SOLD_OUT
        return SaleStatus.LIVE


@dataclass(frozen=True)
class OrderRecord:
    order_id: str
    sale_id: str
    user_id: str
    quantity: int
    status: OrderStatus
    created_at: int
    expires_at: int


class DeadLetter(Struct):
    """An order event the order store could not take, kept for an operator to look at."""

    sale_id: str
    dead_letter_id: str
    entry_id: str
    error: str
    deliveries: int
    event: dict[str, str]
