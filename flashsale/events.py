"""Order events as the Lua scripts append them to a sale's stream, parsed and checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flashsale import keys
from flashsale.errors import PoisonEventError
from flashsale.records import OrderStatus


@dataclass(frozen=True)
class OrderEvent:
    entry_id: str
    order_id: str
    sale_id: str
    user_id: str
    quantity: int
    status: OrderStatus
    created_at: int
    expires_at: int
    at: int


def parse_event(entry_id: str, fields: Mapping[str, str]) -> OrderEvent:
    try:
        event = OrderEvent(
            entry_id=entry_id,
            order_id=fields["order_id"],
            sale_id=keys.parent_sale(fields["sale_id"]),  # the order store has no buckets
            user_id=fields["user_id"],
            quantity=int(fields["quantity"]),
            status=OrderStatus(fields["status"]),
            created_at=int(fields["created_at"]),
            expires_at=int(fields["expires_at"]),
            at=int(fields["at"]),
        )
    except KeyError as exc:
        raise PoisonEventError(f"entry {entry_id} lacks field {exc.args[0]!r}") from None
    except ValueError as exc:
        raise PoisonEventError(f"entry {entry_id} has a malformed field: {exc}") from None
    if event.quantity < 1 or not (event.order_id and event.sale_id and event.user_id):
        raise PoisonEventError(f"entry {entry_id} names no order, sale, user or quantity")
    return event
