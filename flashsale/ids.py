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


class _RandomHex:
    """Cryptographically random hex, read from the OS in blocks rather than one system call
    per order id. Order ids must stay unguessable: they are all a shopper needs to confirm or
    cancel an order."""

    def __init__(self, block: int = 4096) -> None:
        self._block = block
        self._buffer = b""

    def take(self, nbytes: int) -> str:
        if len(self._buffer) < nbytes:
            self._buffer = secrets.token_bytes(self._block)
        taken, self._buffer = self._buffer[:nbytes], self._buffer[nbytes:]
        return taken.hex()


_random_hex = _RandomHex()


def new_order_id(sale_id: str) -> str:
    return f"{sale_ref(sale_id)}-{_random_hex.take(10)}"


def new_sale_id() -> str:
    return f"sale-{secrets.token_hex(6)}"
