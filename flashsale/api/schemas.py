"""Request bodies (validated on decode) and the views the API answers with."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from flashsale import keys
from flashsale.records import (
    DeadLetter,
    NewSale,
    OrderRecord,
    OrderStatus,
    SaleChange,
    SaleRecord,
    SaleStatus,
    WaitingRoom,
)
from flashsale.store.outcomes import Pending
from flashsale.store.shards import MAX_SHARDS
from flashsale.timefmt import format_ms, to_ms

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
Identifier = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN, examples=["sale-42"])
]
Timestamp = Annotated[datetime, Meta(tz=True, description="RFC 3339 time with an offset")]
# The window's two ends, with examples that make a window that is open (ends after starts).
StartsAt = Annotated[Timestamp, Meta(examples=["2000-01-01T00:00:00Z"])]
EndsAt = Annotated[Timestamp, Meta(examples=["2999-12-31T23:59:59Z"])]
Quantity = Annotated[int, Meta(ge=1, le=1_000_000)]
StockAmount = Annotated[int, Meta(ge=1, le=1_000_000_000)]
Shards = Annotated[
    int,
    Meta(
        ge=1, le=MAX_SHARDS,
        description="Buckets the stock is spread over, each on its own Redis slot (1: one "
        "slot). Each user is always served by the same bucket; a rebalancer moves stock to "
        "buckets that ran out. Not with holds_per_address or a waiting room.",
    ),
]  # fmt: skip
PerUserLimit = Annotated[int, Meta(ge=1, le=1_000_000)]
HoldSeconds = Annotated[int, Meta(ge=1, le=7 * 24 * 3600)]
HoldsPerAddress = Annotated[
    int,
    Meta(
        ge=1,
        le=1_000_000,
        description="The most unpaid units one client address may hold at once in the sale "
        "(the peer, or the address a trusted proxy names); null: no cap.",
    ),
]

DEFAULT_PER_USER_LIMIT = 1
DEFAULT_HOLD_SECONDS = 600


class WaitingRoomSettings(Struct, forbid_unknown_fields=True):
    """A sale's waiting room (API.md); off unless enabled."""

    enabled: bool
    admit_per_second: (
        Annotated[float, Meta(gt=0, le=1_000_000, description="null: the engine's pace")] | None
    ) = None
    token_ttl_seconds: Annotated[int, Meta(ge=1, le=24 * 3600)] = 120
    queue_opens_seconds: Annotated[int, Meta(ge=0, le=30 * 24 * 3600)] = 900

    def record(self) -> WaitingRoom:
        return WaitingRoom(
            enabled=self.enabled,
            admit_per_second=self.admit_per_second,
            token_ttl_seconds=self.token_ttl_seconds,
            queue_opens_seconds=self.queue_opens_seconds,
        )

    @classmethod
    def of(cls, room: WaitingRoom) -> WaitingRoomSettings:
        return cls(room.enabled, room.admit_per_second, room.token_ttl_seconds,
                   room.queue_opens_seconds)  # fmt: skip


class QueueCountsView(Struct):
    waiting: int
    admitted: int


class JoinQueueRequest(Struct, forbid_unknown_fields=True):
    user_id: Identifier


class QueueView(Struct, omit_defaults=True):
    """A waiter's standing; purchase_token and token_expires_at only once admitted."""

    ticket: str
    status: str
    position: int | None
    # null once final, and while the line moves too slowly for an estimate worth a number.
    estimated_wait_seconds: float | None
    poll_after_seconds: float
    purchase_token: str | None = None
    token_expires_at: str | None = None
    # Before the open: position is the size of the draw, and places are drawn at this time.
    places_drawn_at: str | None = None


class PurchaseRequest(Struct, forbid_unknown_fields=True):
    user_id: Identifier
    quantity: Quantity


class CreateSaleRequest(Struct, forbid_unknown_fields=True):
    # Rules /openapi.json states beside the fields' own (JSON Schema cannot compare fields).
    json_schema_rules: ClassVar[dict[str, Any]] = {
        "description": (
            "ends_at must be after starts_at; with shards > 1, stock must be at least shards, "
            "and holds_per_address and an enabled waiting_room are not allowed: else 400 "
            "invalid_request."
        ),
        "examples": [
            {
                "sale_id": "sale-42", "sku": "HEADPHONES-1", "name": "Anniversary headphones",
                "stock": 300, "starts_at": "2000-01-01T00:00:00Z",
                "ends_at": "2999-12-31T23:59:59Z", "per_user_limit": 1, "hold_seconds": 600,
            }
        ],
    }  # fmt: skip
    sku: Annotated[str, Meta(min_length=1, max_length=128)]
    name: Annotated[str, Meta(min_length=1, max_length=256)]
    stock: StockAmount
    starts_at: StartsAt
    ends_at: EndsAt
    sale_id: Identifier | UnsetType = UNSET
    per_user_limit: PerUserLimit = DEFAULT_PER_USER_LIMIT
    hold_seconds: HoldSeconds = DEFAULT_HOLD_SECONDS
    holds_per_address: HoldsPerAddress | None = None
    waiting_room: WaitingRoomSettings | None = None
    shards: Shards = 1

    def new_sale(self) -> NewSale:
        return NewSale(
            sku=self.sku,
            name=self.name,
            stock=self.stock,
            starts_at=to_ms(self.starts_at),
            ends_at=to_ms(self.ends_at),
            per_user_limit=self.per_user_limit,
            hold_seconds=self.hold_seconds,
            holds_per_address=self.holds_per_address,
            waiting_room=self.waiting_room.record() if self.waiting_room else WaitingRoom(),
            shards=self.shards,
        )


class PatchSaleRequest(Struct, forbid_unknown_fields=True):
    json_schema_rules: ClassVar[dict[str, Any]] = {
        "minProperties": 1,
        "description": "At least one change. The window must stay open for a while: ends_at "
        "after starts_at, comparing what is sent with what the sale has, else 400 "
        "invalid_request.",
    }
    add_stock: StockAmount | UnsetType = UNSET
    starts_at: StartsAt | UnsetType = UNSET
    ends_at: EndsAt | UnsetType = UNSET
    paused: bool | UnsetType = UNSET
    per_user_limit: PerUserLimit | UnsetType = UNSET
    # null lifts the cap; holds taken while there was none never count against a new one.
    holds_per_address: HoldsPerAddress | UnsetType | None = UNSET
    waiting_room: WaitingRoomSettings | UnsetType = UNSET

    def is_empty(self) -> bool:
        return all(getattr(self, name) is UNSET for name in self.__struct_fields__)

    def change(self) -> SaleChange:
        return SaleChange(
            add_stock=None if self.add_stock is UNSET else self.add_stock,
            starts_at=None if self.starts_at is UNSET else to_ms(self.starts_at),
            ends_at=None if self.ends_at is UNSET else to_ms(self.ends_at),
            paused=None if self.paused is UNSET else self.paused,
            per_user_limit=None if self.per_user_limit is UNSET else self.per_user_limit,
            holds_per_address=(
                None if self.holds_per_address is UNSET else self.holds_per_address or 0
            ),
            waiting_room=None if self.waiting_room is UNSET else self.waiting_room.record(),
        )


class SaleView(Struct):
    sale_id: str
    sku: str
    name: str
    status: SaleStatus
    starts_at: str
    ends_at: str
    stock_total: int
    stock_left: int
    per_user_limit: int
    hold_seconds: int


class CreatedSaleView(SaleView, omit_defaults=True):
    """A new sale as shoppers see it, plus the settings only its operator sees (queue: only
    while the waiting room is on)."""

    holds_per_address: int | None
    waiting_room: WaitingRoomSettings
    queue: QueueCountsView | None = None


class UnitCounts(Struct):
    """Units by order state, and purchase attempts that reached the engine."""

    reserved: int
    confirmed: int
    cancelled: int
    expired: int
    attempts: int
    rejected: int
    shed: int


class OrderCounts(Struct):
    """Orders (not units) by state."""

    reserved: int
    confirmed: int
    cancelled: int
    expired: int


class AdminSaleView(Struct, omit_defaults=True):
    sale_id: str
    sku: str
    name: str
    status: SaleStatus
    starts_at: str
    ends_at: str
    stock_total: int
    stock_left: int
    per_user_limit: int
    hold_seconds: int
    holds_per_address: int | None
    waiting_room: WaitingRoomSettings
    counts: UnitCounts
    order_counts: OrderCounts
    ended_at: str | None
    queue: QueueCountsView | None = None  # only while the waiting room is on


class SaleList(Struct):
    sales: list[AdminSaleView]


class ReservationView(Struct):
    order_id: str
    sale_id: str
    user_id: str
    quantity: int
    status: OrderStatus
    expires_at: str


class PendingView(Struct):
    """A 202: the attempt reached Redis, its outcome is not known yet (GET the order)."""

    order_id: str
    sale_id: str
    user_id: str
    quantity: int
    status: OrderStatus


class OrderView(Struct):
    order_id: str
    sale_id: str
    user_id: str
    quantity: int
    status: OrderStatus
    # null while pending: the hold's times are not known until the attempt is settled.
    created_at: str | None
    expires_at: str | None


class DeadLetterList(Struct):
    dead_letters: list[DeadLetter]


def sale_view(sale: SaleRecord) -> SaleView:
    return SaleView(
        sale_id=sale.sale_id,
        sku=sale.sku,
        name=sale.name,
        status=sale.status,
        starts_at=format_ms(sale.starts_at),
        ends_at=format_ms(sale.ends_at),
        stock_total=sale.stock_total,
        stock_left=sale.stock_left,
        per_user_limit=sale.per_user_limit,
        hold_seconds=sale.hold_seconds,
    )


def created_sale_view(sale: SaleRecord) -> CreatedSaleView:
    return CreatedSaleView(
        **msgspec.structs.asdict(sale_view(sale)),
        holds_per_address=sale.holds_per_address,
        waiting_room=WaitingRoomSettings.of(sale.waiting_room),
        queue=_queue_counts(sale),
    )


def _queue_counts(sale: SaleRecord) -> QueueCountsView | None:
    if not sale.waiting_room.enabled:
        return None
    return QueueCountsView(waiting=sale.queue.waiting, admitted=sale.queue.admitted)


def admin_sale_view(sale: SaleRecord) -> AdminSaleView:
    public = sale_view(sale)
    c = sale.counters
    return AdminSaleView(
        **msgspec.structs.asdict(public),
        holds_per_address=sale.holds_per_address,
        waiting_room=WaitingRoomSettings.of(sale.waiting_room),
        counts=UnitCounts(
            reserved=c["u_reserved"],
            confirmed=c["u_confirmed"],
            cancelled=c["u_cancelled"],
            expired=c["u_expired"],
            attempts=c["attempts"],
            rejected=c["rejected"],
            shed=c["shed"],
        ),
        order_counts=OrderCounts(
            reserved=c["o_reserved"],
            confirmed=c["o_confirmed"],
            cancelled=c["o_cancelled"],
            expired=c["o_expired"],
        ),
        ended_at=format_ms(sale.ended_at) if sale.ended_at else None,
        queue=_queue_counts(sale),
    )


def pending_view(pending: Pending) -> PendingView:
    return PendingView(
        order_id=pending.order_id,
        sale_id=keys.parent_sale(pending.sale_id),  # it was sent to a bucket of the sale
        user_id=pending.user_id,
        quantity=pending.quantity,
        status=OrderStatus.PENDING,
    )


def pending_order_view(pending: Pending) -> OrderView:
    return OrderView(
        order_id=pending.order_id,
        sale_id=keys.parent_sale(pending.sale_id),  # it was sent to a bucket of the sale
        user_id=pending.user_id,
        quantity=pending.quantity,
        status=OrderStatus.PENDING,
        created_at=None,
        expires_at=None,
    )


def order_view(order: OrderRecord) -> OrderView:
    return OrderView(
        order_id=order.order_id,
        sale_id=order.sale_id,
        user_id=order.user_id,
        quantity=order.quantity,
        status=order.status,
        created_at=format_ms(order.created_at),
        expires_at=format_ms(order.expires_at),
    )
