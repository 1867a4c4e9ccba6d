"""Queue tickets and purchase tokens: HMAC-SHA256 over what they name, with a key every
process shares (the standard library's hmac; Queue-it's exit tokens are the same idea).

A ticket names a sale and a user and never expires: the same user joining again gets the
same ticket. A purchase token names a sale, a user and its expiry. Neither can be made or
altered without the key, nor used for another sale or user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_TICKET = b"flashsale-ticket-v1"
_TOKEN = b"flashsale-purchase-token-v1"
_MAC_BYTES = 16  # 128 bits: forging one by guessing is out of reach


class Signer:
    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the signing key is empty")
        self._key = key.encode()

    def ticket(self, sale_id: str, user_id: str) -> str:
        """`<user>.<mac>`: user ids are [A-Za-z0-9_.:-], so the mac is after the last dot."""
        return f"{user_id}.{self._mac(_TICKET, sale_id, user_id)}"

    def ticket_user(self, sale_id: str, ticket: str) -> str | None:
        """The user a ticket of this sale names; None for anything else."""
        user_id, dot, mac = ticket.rpartition(".")
        if not dot or not user_id:
            return None
        if not hmac.compare_digest(mac, self._mac(_TICKET, sale_id, user_id)):
            return None
        return user_id

    def purchase_token(self, sale_id: str, user_id: str, expires_at_ms: int) -> str:
        return f"{expires_at_ms}.{self._mac(_TOKEN, sale_id, user_id, str(expires_at_ms))}"

    def token_valid(self, sale_id: str, user_id: str, token: str, now_ms: int) -> bool:
        """Signed for this sale and user, and not expired at `now_ms`."""
        expires, dot, mac = token.partition(".")
        if not dot or not expires.isdigit():
            return False
        expected = self._mac(_TOKEN, sale_id, user_id, expires)
        return hmac.compare_digest(mac, expected) and now_ms < int(expires)

    def _mac(self, purpose: bytes, *parts: str) -> str:
        # Parts are joined with a byte no identifier contains, after the purpose, so that no
        # two different tuples sign the same message.
        message = b"\x00".join([purpose, *(p.encode() for p in parts)])
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
