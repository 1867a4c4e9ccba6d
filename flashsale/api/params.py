"""Validation of what arrives outside the body: path identifiers and headers."""

import re

from aiohttp import web

from flashsale.api.problems import ProblemCode, ProblemError

_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# RFC 9110 visible ASCII plus space, as the contract's "printable characters".
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,128}")
# What a Purchase-Token header may carry at all (whether it is one the room signed is the
# room's to say): printable ASCII, no longer than any token the room gives.
PURCHASE_TOKEN_PATTERN = r"^[!-~]{1,64}$"  # noqa: S105 - a pattern
_PURCHASE_TOKEN = re.compile(PURCHASE_TOKEN_PATTERN)


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _IDENTIFIER.fullmatch(value):
        raise ProblemError(
            ProblemCode.INVALID_REQUEST,
            f"{name}: must be 1-64 characters from [A-Za-z0-9_.:-]",
        )
    return value


def idempotency_key(request: web.Request) -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise ProblemError(
            ProblemCode.INVALID_REQUEST,
            "Idempotency-Key: must be 1-128 printable ASCII characters",
        )
    return value


def purchase_token(request: web.Request) -> str | None:
    """The waiting room's Purchase-Token header; a malformed one is a 400 (whether it is
    valid - signed, this user's and sale's, not expired - is the room's to say: 403)."""
    value = request.headers.get("Purchase-Token")
    if value is None:
        return None
    if not _PURCHASE_TOKEN.fullmatch(value):
        raise ProblemError(
            ProblemCode.INVALID_REQUEST,
            "Purchase-Token: must be 1-64 printable ASCII characters without spaces (the "
            "token the waiting room gave)",
        )
    return value
