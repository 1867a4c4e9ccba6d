"""Identifiers the engine names: sale ids it generates, and order ids that name their sale."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets


@functools.lru_cache(maxsize=65536)
def sale_ref(sale_id: str) -> str:
    """A short, stable name for a sale, embedded in its order ids so lookups find the sale."""
    digest = hashlib.sha256(sale_id.encode()).digest()
    return base64.b32encode(digest).decode()[:10].lower()


def new_order_id(sale_id: str) -> str:
    return f"{sale_ref(sale_id)}-{secrets.token_hex(10)}"


def new_sale_id() -> str:
    return f"sale-{secrets.token_hex(6)}"
