"""A sale of several shards in Redis: its buckets made, its views summed, its changes fanned
out. Each bucket is a sale of its own to the scripts (flashsale/store/shards.py names them);
the sale's own hash keeps the settings, the total stock and no units."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from flashsale.records import NewSale, SaleChange
from flashsale.store.shards import split

# The counters of a bucket that add up to the sale's.
SUMMED = (
    "attempts", "rejected", "shed",
    "u_reserved", "u_confirmed", "u_cancelled", "u_expired",
    "o_reserved", "o_confirmed", "o_cancelled", "o_expired",
)  # fmt: skip


def bucket_sales(sale: NewSale) -> list[NewSale]:
    """What each bucket is created as: the sale's settings with its share of the stock."""
    return [
        dataclasses.replace(sale, stock=share, shards=1) for share in split(sale.stock, sale.shards)
    ]


def bucket_changes(change: SaleChange, shards: int) -> list[SaleChange]:
    """What each bucket is patched with: the change, with its share of any added stock."""
    if change.add_stock is None:
        return [change] * shards
    return [
        dataclasses.replace(change, add_stock=share or None)
        for share in split(change.add_stock, shards)
    ]


def summed(sale: dict[str, str], buckets: Sequence[dict[str, str]]) -> dict[str, str]:
    """The sale's hash as if it held its buckets' units: counters summed, and stock_left the
    units neither held nor sold (in a bucket's stock or moving between two)."""
    total = dict(sale)
    for name in SUMMED:
        total[name] = str(sum(int(b.get(name, "0")) for b in buckets))
    taken = int(total["u_reserved"]) + int(total["u_confirmed"])
    total["stock_left"] = str(int(sale["stock_total"]) - taken)
    return total
