"""What a process keeps of one sale's waiting room, read from Redis a few times a second, so
that polls are answered without Redis (lua/queue_state.lua)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The sale hash's fields queue_state.lua reads, in this order.
ROOM_FIELDS = (
    "wr_enabled", "wr_rate", "wr_token_ttl", "starts_at", "ends_at", "ended_at", "stock_left",
    "u_reserved", "wr_serving", "wr_opened", "wr_admitted", "wr_auto_rate",
)  # fmt: skip


@dataclass
class RoomState:
    sale_id: str
    enabled: bool
    admit_per_second: float | None  # None: the engine's pace
    token_ttl_ms: int
    starts_at: int
    ends_at: int
    ended_at: int
    stock_left: int
    reserved: int  # units in holds, which may still come back
    serving: int  # places below this were served (admitted, or gone)
    opened: bool
    admitted_total: int
    auto_rate: float | None  # the engine's own pace, once a tick has set it
    prequeue_length: int
    queue_length: int
    read_at_ms: int  # Redis's clock when read
    read_at_loop: float  # this process's loop clock at the same moment

    @classmethod
    def parse(cls, sale_id: str, reply: list[Any], loop_now: float) -> RoomState | None:
        """None when there is no such sale."""
        now, *fields, prequeue_length, queue_length = reply
        values = dict(zip(ROOM_FIELDS, (str(f) for f in fields), strict=True))
        if not values["starts_at"]:
            return None

        def number(name: str) -> int:
            return int(values[name] or 0)

        return cls(
            sale_id=sale_id,
            enabled=values["wr_enabled"] == "1",
            admit_per_second=float(values["wr_rate"] or 0) or None,
            token_ttl_ms=number("wr_token_ttl") * 1000,
            starts_at=number("starts_at"),
            ends_at=number("ends_at"),
            ended_at=number("ended_at"),
            stock_left=number("stock_left"),
            reserved=number("u_reserved"),
            serving=number("wr_serving"),
            opened=values["wr_opened"] == "1",
            admitted_total=number("wr_admitted"),
            auto_rate=float(values["wr_auto_rate"]) if values["wr_auto_rate"] else None,
            prequeue_length=int(prequeue_length),
            queue_length=int(queue_length),
            read_at_ms=int(now),
            read_at_loop=loop_now,
        )

    def redis_now_ms(self, loop_now: float) -> int:
        """Redis's clock now, as this process can tell it without asking."""
        return self.read_at_ms + int((loop_now - self.read_at_loop) * 1000)

    def over(self, now_ms: int) -> bool:
        return self.ended_at > 0 or now_ms >= self.ends_at

    @property
    def nothing_left_for_waiters(self) -> bool:
        """No stock, and no hold that could still give units back."""
        return self.stock_left <= 0 and self.reserved <= 0
