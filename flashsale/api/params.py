"""Validation of what arrives outside the body: path identifiers and headers."""

import re

from aiohttp import web

from flashsale.api.problems import ProblemCode, ProblemError

_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# RFC 9110 visible ASCII plus space, as the contract's "printable characters".
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,128}")


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
