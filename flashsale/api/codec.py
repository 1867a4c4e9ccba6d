"""Request bodies in, response bodies out: JSON by default, msgpack when the client asks."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import msgspec
from aiohttp import web

from flashsale.api.problems import ProblemCode, ProblemError

T = TypeVar("T")

JSON = "application/json"
MSGPACK = "application/msgpack"
_MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})

_AT = r"(?: - at `\$\.(?P<at>[^`]*)`)?"  # where, for a field of a nested object
_UNKNOWN_FIELD = re.compile(r"Object contains (?P<what>unknown field) `(?P<field>[^`]*)`" + _AT)
_MISSING_FIELD = re.compile(r"Object (?P<what>missing required field) `(?P<field>[^`]*)`" + _AT)

# msgspec's words for an integer field (optional or not) given a float.
_INT_GOT_FLOAT = re.compile(r"Expected `int( \| null)?`, got `float`")
_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


async def decode_body(request: web.Request, kind: type[T]) -> T:
    """Read and validate the body as `kind`; any flaw is a 400 naming the field."""
    raw = await request.read()  # over client_max_size aiohttp raises 413 itself
    if not raw:
        raise ProblemError(ProblemCode.INVALID_REQUEST, "the request body is empty")
    media_type = request.content_type if request.headers.get("Content-Type") else JSON
    try:
        if media_type in _MSGPACK_TYPES:
            return _decode(msgspec.msgpack.decode, raw, kind)
        if media_type == JSON or media_type.endswith("+json"):
            return _decode(msgspec.json.decode, raw, kind)
    except msgspec.ValidationError as exc:
        raise ProblemError(ProblemCode.INVALID_REQUEST, _field_message(str(exc))) from None
    except msgspec.DecodeError as exc:
        detail = f"the body is not valid {_media_name(media_type)}: {exc}"
        raise ProblemError(ProblemCode.INVALID_REQUEST, detail) from None
    raise ProblemError(
        ProblemCode.INVALID_REQUEST,
        f"unsupported Content-Type {media_type!r}: send {JSON} or {MSGPACK}",
    )


def _decode(decode: Callable[..., Any], raw: bytes, kind: type[T]) -> T:
    """Strict, except that an integral number is an integer however it is spelled: JSON
    Schema (and so the OpenAPI document) counts `2.0` as the integer 2, and a client that
    sends it means 2. `2.5` and `"2"` stay errors. The lenient pass runs only after the
    strict one failed on exactly that, so well-formed bodies pay nothing for it."""
    try:
        return cast(T, decode(raw, type=kind))
    except msgspec.ValidationError as exc:
        if not _INT_GOT_FLOAT.search(str(exc)):
            raise
    return msgspec.convert(_integral_floats_as_ints(decode(raw)), kind)


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value


def _field_message(message: str) -> str:
    """Leads with the field's name: msgspec says "Expected `int` >= 1 - at `$.quantity`"."""
    for pattern in (_UNKNOWN_FIELD, _MISSING_FIELD):
        match = pattern.fullmatch(message)
        if match:
            where = f"{match['at']}." if match["at"] else ""
            return f"{where}{match['field']}: {match['what']}"
    text, sep, where = message.rpartition(" - at `$.")
    if not sep:
        return message
    return f"{where.rstrip('`')}: {text}"


def _media_name(media_type: str) -> str:
    return "msgpack" if media_type in _MSGPACK_TYPES else "JSON"


def fingerprint(body: msgspec.Struct) -> str:
    """Identifies a request body regardless of how the client spelled or encoded it."""
    return hashlib.sha256(_json_encoder.encode(body)).hexdigest()[:32]


def wants_msgpack(request: web.Request) -> bool:
    # Every msgpack media type contains "msgpack"; JSON clients pay for one lookup.
    return "msgpack" in request.headers.get("Accept", "")


def respond(
    request: web.Request,
    payload: object,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    if wants_msgpack(request):
        body, content_type = _msgpack_encoder.encode(payload), MSGPACK
    else:
        body, content_type = _json_encoder.encode(payload), JSON
    return web.Response(status=status, body=body, content_type=content_type, headers=headers)
