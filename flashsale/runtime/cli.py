"""The `flashsale` command: argument parsing and process set-up for each subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from flashsale import __version__
from flashsale.errors import FlashsaleError
from flashsale.logs import configure as configure_logs
from flashsale.runtime.commands import run_audit, run_dead_letters, run_worker
from flashsale.runtime.loop import run_coroutine
from flashsale.runtime.sales.command import add_sales_parser, run_sales
from flashsale.runtime.serve import serve
from flashsale.settings import Settings, load_settings

T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashsale", description=__doc__)
    parser.add_argument("--version", action="version", version=f"flashsale {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("FLASHSALE_CONFIG") or None,
        help="a TOML file overriding config/flashsale.toml (default: $FLASHSALE_CONFIG)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080; 0 picks one)")
    serve.add_argument("--data-dir", help="embedded Redis data and admin token (default var)")
    serve.add_argument(
        "--workers", type=int, help="service processes sharing the port (default: CPU count)"
    )
    serve.add_argument(
        "--no-worker",
        dest="in_process_worker",
        action="store_false",
        default=None,
        help="do not run the order-queue worker and hold sweeper in this process",
    )

    worker = commands.add_parser(
        "worker", help="hand order events to the order store and expire holds"
    )
    worker.add_argument("--data-dir", help="where the embedded Redis and SQLite live (default var)")
    worker.add_argument("--burst", action="store_true", help="drain everything, then exit")

    audit = commands.add_parser("audit", help="check the invariants; non-zero exit on violation")
    audit.add_argument("--data-dir", help="where the embedded Redis and SQLite live (default var)")
    audit.add_argument("--sale", dest="sale_id", help="audit only this sale")
    audit.add_argument(
        "--repair",
        action="store_true",
        help="first bring Redis level with the order store where a failover lost writes "
        "(stock first; what would oversell is reported, not restored)",
    )

    dead = commands.add_parser(
        "dead-letters", help="order events the order store refused: list them, or replay them"
    )
    dead.add_argument("action", choices=("list", "replay"))
    dead.add_argument("--data-dir", help="where the embedded Redis and SQLite live (default var)")
    dead.add_argument("--sale", dest="sale_id", help="only this sale's dead letters")
    dead.add_argument("--json", action="store_true", help="print JSON (list) for scripts")

    add_sales_parser(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        os.environ,
        {
            "server_host": getattr(args, "host", None),
            "server_port": getattr(args, "port", None),
            "server_data_dir": getattr(args, "data_dir", None),
            "server_workers": getattr(args, "workers", None),
            "worker_in_process": getattr(args, "in_process_worker", None),
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        configure_logs(settings.log.level, settings.log.format)
        if args.command == "serve":
            run_coroutine(serve(settings))
        elif args.command == "worker":
            run_coroutine(run_worker(settings, args.burst))
        elif args.command == "audit":
            return 0 if run_coroutine(run_audit(settings, args.sale_id, repair=args.repair)) else 1
        elif args.command == "sales":
            return run_sales(settings, args)
        elif args.command == "dead-letters":
            run_coroutine(run_dead_letters(settings, args.action, args.sale_id, args.json))
    except FlashsaleError as exc:
        print(f"flashsale: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
