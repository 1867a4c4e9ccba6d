"""`flashsale sales list|show|create|pause|resume|add-stock|end [--json]`: each verb is one
call of the operator API (create: one per sale of a file). Tables for people, the API's
JSON with --json. Exit 0 when done, 1 when the engine refused (its problem in one line),
2 when it could not be asked (no engine, no token, a file or time that does not read)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flashsale.errors import FlashsaleError
from flashsale.runtime.sales.client import OperatorClient, OperatorError
from flashsale.runtime.sales.files import SaleFileError, read_sales
from flashsale.runtime.sales.tables import console, sale_table, sales_table
from flashsale.runtime.sales.when import TimeSyntaxError, window
from flashsale.settings import Settings

REFUSED, CANNOT_RUN = 1, 2


def add_sales_parser(commands: Any) -> None:
    sales = commands.add_parser(
        "sales",
        help="list, show, create, pause, resume, add stock to and end sales of a running engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help="the engine (default: $FLASHSALE_URL, else the serve running on "
        "--data-dir, else the configured host and port)",
    )  # fmt: skip
    common.add_argument("--data-dir", help="where serve keeps its token and address (var)")
    common.add_argument("--json", action="store_true", help="print the API's JSON, for scripts")
    verbs = sales.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", parents=[common], help="every sale, with its counts")
    for verb, text in (
        ("show", "one sale, with its counts"), ("pause", "stop selling (holds stay payable)"),
        ("resume", "sell again after a pause"), ("end", "end the sale now"),
    ):  # fmt: skip
        verbs.add_parser(verb, parents=[common], help=text).add_argument("sale_id")
    add = verbs.add_parser("add-stock", parents=[common], help="put more units on sale")
    add.add_argument("sale_id")
    add.add_argument("units", type=int, help="how many units to add (>= 1)")
    add.add_argument(
        "--idempotency-key", help="repeat the command with the same key to have it applied once"
    )
    _add_create_parser(verbs, common)


def _add_create_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    create = verbs.add_parser(
        "create",
        parents=[common],
        help="schedule a sale (from options, or every sale of a TOML or JSON file)",
        description="Times are RFC 3339 (2026-12-24T18:00:00Z), 'now', 'in 10m', and for "
        "--ends also 'for 2h' (from the start).",
    )
    create.add_argument("--file", type=Path, help="a .toml or .json file of sales")
    create.add_argument("--id", dest="sale_id", help="the sale's id (default: one is made)")
    create.add_argument("--sku")
    create.add_argument("--name")
    create.add_argument("--stock", type=int)
    create.add_argument("--starts", default="now", help="when it opens (default: now)")
    create.add_argument("--ends", help="when it closes: a time, 'in 3h' or 'for 2h'")
    create.add_argument("--per-user-limit", type=int)
    create.add_argument("--hold-seconds", type=int)
    create.add_argument("--holds-per-address", type=int)
    create.add_argument("--shards", type=int)
    create.add_argument("--waiting-room", action="store_true", help="shoppers queue first")
    create.add_argument(
        "--admit-per-second", type=float, help="the waiting room's pace (default: measured)"
    )


def run_sales(settings: Settings, args: argparse.Namespace) -> int:
    try:
        client = OperatorClient.locate(settings, args.url)
        verb: Verb = _VERBS[args.verb]
        return verb(client, args)
    except OperatorError as exc:
        print(f"flashsale sales: {exc}", file=sys.stderr)
        return REFUSED if exc.reached else CANNOT_RUN
    except (SaleFileError, TimeSyntaxError, FlashsaleError) as exc:
        print(f"flashsale sales: {exc}", file=sys.stderr)
        return CANNOT_RUN


def _path(sale_id: str) -> str:
    return f"/admin/sales/{quote(sale_id, safe='')}"


def _print_sale(sale: dict[str, Any], as_json: bool, said: str | None = None) -> None:
    if as_json:
        print(json.dumps(sale, indent=2))
        return
    out = console()
    if said:
        out.print(said, highlight=False)
    out.print(sale_table(sale))


def _list(client: OperatorClient, args: argparse.Namespace) -> int:
    listing = client.call("GET", "/admin/sales")
    if args.json:
        print(json.dumps(listing, indent=2))
    elif not listing["sales"]:
        print("no sales yet: flashsale sales create --help")
    else:
        console().print(sales_table(listing["sales"]))
    return 0


def _show(client: OperatorClient, args: argparse.Namespace) -> int:
    _print_sale(client.call("GET", _path(args.sale_id)), args.json)
    return 0


Verb = Callable[[OperatorClient, argparse.Namespace], int]


def _patch(change: dict[str, Any], said: str) -> Verb:
    def run(client: OperatorClient, args: argparse.Namespace) -> int:
        sale = client.call("PATCH", _path(args.sale_id), change)
        _print_sale(sale, args.json, f"{said} {args.sale_id}")
        return 0

    return run


def _add_stock(client: OperatorClient, args: argparse.Namespace) -> int:
    key = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    sale = client.call("PATCH", _path(args.sale_id), {"add_stock": args.units}, key)
    _print_sale(sale, args.json, f"added {args.units} units to {args.sale_id}")
    return 0


def _end(client: OperatorClient, args: argparse.Namespace) -> int:
    sale = client.call("POST", _path(args.sale_id) + "/end")
    _print_sale(sale, args.json, f"ended {args.sale_id}")
    return 0


def _create(client: OperatorClient, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    bodies = read_sales(args.file, now=now) if args.file else [_body_of(args, now)]
    created, failed = [], 0
    for body in bodies:
        try:
            created.append(client.call("POST", "/admin/sales", body))
        except OperatorError as exc:
            if not exc.reached or len(bodies) == 1:
                raise
            failed += 1
            print(f"flashsale sales: {body.get('sale_id', 'a sale')}: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps(created[0] if not args.file else {"sales": created}, indent=2))
    else:
        out = console()
        for sale in created:
            out.print(f"created {sale['sale_id']}", highlight=False)
            out.print(sale_table(sale | {"counts": _NO_COUNTS}))
    return REFUSED if failed else 0


_NO_COUNTS = dict.fromkeys(
    ("reserved", "confirmed", "cancelled", "expired", "attempts", "rejected", "shed"), 0
)


def _body_of(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    missing = [
        f"--{name}" for name in ("sku", "name", "stock", "ends") if getattr(args, name) is None
    ]
    if missing:
        raise FlashsaleError(f"create needs {', '.join(missing)} (or --file)")
    starts_at, ends_at = window(args.starts, args.ends, now=now)
    body: dict[str, Any] = {
        "sku": args.sku, "name": args.name, "stock": args.stock,
        "starts_at": starts_at, "ends_at": ends_at,
    }  # fmt: skip
    for field in ("sale_id", "per_user_limit", "hold_seconds", "holds_per_address", "shards"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    if args.waiting_room or args.admit_per_second is not None:
        body["waiting_room"] = {"enabled": True, "admit_per_second": args.admit_per_second}
    return body


_VERBS: dict[str, Verb] = {
    "list": _list,
    "show": _show,
    "create": _create,
    "pause": _patch({"paused": True}, "paused"),
    "resume": _patch({"paused": False}, "resumed"),
    "add-stock": _add_stock,
    "end": _end,
}
