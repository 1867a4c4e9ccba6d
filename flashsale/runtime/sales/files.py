"""Sales written down for `flashsale sales create --file`: TOML or JSON, one sale or many.

    # launch.toml                         // launch.json
    [[sales]]                             {"sales": [{"sale_id": "launch", "sku": ...}]}
    sale_id = "launch"                    (or one sale object, or a list of them)
    sku = "HP-1"
    name = "Anniversary headphones"
    stock = 500
    starts_at = "in 10m"                  # or 2026-12-24T18:00:00Z, or "now"
    ends_at = "for 2h"                    # from starts_at; or an RFC 3339 time, "in 3h"
    [sales.waiting_room]
    enabled = true

The fields are the API's (POST /admin/sales); the engine judges them, so a wrong one is
refused with the engine's own words. Only the times are read here, to resolve "in"/"for".
"""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from flashsale.runtime.sales.when import TimeSyntaxError, moment, rfc3339


class SaleFileError(ValueError):
    pass


def read_sales(path: Path, *, now: datetime) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SaleFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".toml":
            parsed: Any = tomllib.loads(raw.decode())
        else:
            parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise SaleFileError(f"{path}: not valid {kind}: {exc}") from None
    if isinstance(parsed, dict) and "sales" in parsed:
        parsed = parsed["sales"]
    sales = [parsed] if isinstance(parsed, dict) else parsed
    if not isinstance(sales, list) or not sales or not all(isinstance(s, dict) for s in sales):
        raise SaleFileError(f"{path}: expected a sale, a list of sales or a 'sales' table")
    return [_with_times(sale, f"{path}: sale {n}", now) for n, sale in enumerate(sales, 1)]


def _with_times(sale: dict[str, Any], where: str, now: datetime) -> dict[str, Any]:
    resolved = dict(sale)
    if "sale_id" in sale:
        where = f"{where} ({sale['sale_id']})"
    try:
        start = _time(sale.get("starts_at"), now, None)
        if start is not None:
            resolved["starts_at"] = rfc3339(start)
        end = _time(sale.get("ends_at"), now, start)
        if end is not None:
            resolved["ends_at"] = rfc3339(end)
    except TimeSyntaxError as exc:
        raise SaleFileError(f"{where}: {exc}") from None
    return resolved


def _time(value: Any, now: datetime, start: datetime | None) -> datetime | None:
    if value is None:
        return None  # the engine names the missing field
    if isinstance(value, datetime):  # a TOML date-time
        if value.tzinfo is None:
            raise TimeSyntaxError(f"{value.isoformat()} has no time zone: add Z for UTC")
        return value
    if not isinstance(value, str):
        raise TimeSyntaxError(f"{value!r} is not a time")
    return moment(value, now=now, start=start)
