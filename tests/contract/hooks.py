"""Schemathesis hooks for the contract run (tests/contract/schemathesis.toml).

- msgpack both ways: bodies sent as application/msgpack are encoded, and answers in msgpack
  are decoded so that they are checked against the schema like JSON ones. A request sent in
  msgpack asks for msgpack back, and so does every other bodiless request.
- The rules between fields that JSON Schema cannot state (and the schema describes in
  words): a new sale's ends_at is after its starts_at, and a sale of several shards has at
  least a unit per shard and no holds_per_address or waiting room. Generated sales that
  break them are not schema-valid in fact, so they are not sent as such.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import msgspec
import schemathesis

MSGPACK = "application/msgpack"
_bodiless = itertools.count()


# msgpack integers are 64-bit; negative cases draw larger ones, sent as the nearest float.
_INT_RANGE = range(-(2**63), 2**64)


@schemathesis.serializer(MSGPACK)
def to_msgpack(ctx: Any, value: Any) -> bytes:
    return msgspec.msgpack.encode(_representable(value))


def _representable(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE:
        return float(value)
    if isinstance(value, dict):
        return {k: _representable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_representable(v) for v in value]
    return value


@schemathesis.deserializer(MSGPACK)
def from_msgpack(ctx: Any, response: Any) -> Any:
    return msgspec.msgpack.decode(response.content)


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    wants_msgpack = case.media_type == MSGPACK if case.media_type else next(_bodiless) % 2 == 1
    if wants_msgpack:
        if case.headers is None:
            case.headers = {}
        case.headers["Accept"] = MSGPACK


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    operation = case.operation
    if (operation.method.upper(), operation.path) != ("POST", "/admin/sales"):
        return True
    if not isinstance(case.body, dict):
        return True
    starts, ends = _moment(case.body.get("starts_at")), _moment(case.body.get("ends_at"))
    in_order = starts is None or ends is None or ends > starts
    return in_order and _shards_allowed(case.body)


def _shards_allowed(body: dict[str, Any]) -> bool:
    """A sale of several shards has at least a unit per shard, and no per-address cap or
    waiting room (the schema says so in words)."""
    shards, stock = _number(body.get("shards")), _number(body.get("stock"))
    if shards is None or shards <= 1:
        return True
    room = body.get("waiting_room")
    room_on = isinstance(room, dict) and room.get("enabled") is True
    enough = stock is None or stock >= shards
    return enough and body.get("holds_per_address") is None and not room_on


def _number(value: Any) -> float | None:
    """A number as the engine reads it (an integral float, 19.0, is the integer 19)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
