"""How `flashsale sales` shows sales to people (rich tables); `--json` skips all of this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from flashsale.runtime.sales.when import relative

BAR_WIDTH = 12
_STATUS_STYLES = {
    "live": "bold green", "scheduled": "cyan", "paused": "yellow",
    "sold_out": "magenta", "ended": "dim",
}  # fmt: skip


def console() -> Console:
    """Wide enough that a table piped to a file or a pager keeps its columns whole."""
    probe = Console()
    return Console(width=None if probe.is_terminal else 160)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def window_text(sale: dict[str, Any], now: datetime) -> str:
    starts, ends = _at(sale["starts_at"]), _at(sale["ends_at"])
    if sale.get("ended_at"):
        return f"ended {relative(_at(sale['ended_at']), now)}"
    if now < starts:
        return f"opens {relative(starts, now)}, for {relative(ends, starts).removeprefix('in ')}"
    if now < ends:
        return f"opened {relative(starts, now)}, closes {relative(ends, now)}"
    return f"closed {relative(ends, now)}"


def stock_bar(left: int, total: int) -> Text:
    filled = round(BAR_WIDTH * left / total) if total else 0
    bar = Text("█" * filled, style="green") + Text("░" * (BAR_WIDTH - filled), style="dim")
    return bar + Text(f" {left}/{total}")


def status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, ""))


def sales_table(sales: list[dict[str, Any]], now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (
        ("sale", "left"), ("name", "left"), ("status", "left"), ("stock left", "left"),
        ("held", "right"), ("paid", "right"), ("expired", "right"), ("window", "left"),
    ):  # fmt: skip
        table.add_column(name, justify=justify, no_wrap=name != "name")  # type: ignore[arg-type]
    for sale in sales:
        counts = sale["counts"]
        table.add_row(
            sale["sale_id"], sale["name"], status_text(sale["status"]),
            stock_bar(sale["stock_left"], sale["stock_total"]),
            str(counts["reserved"]), str(counts["confirmed"]), str(counts["expired"]),
            window_text(sale, now),
        )  # fmt: skip
    return table


def sale_table(sale: dict[str, Any], now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    counts = sale["counts"]
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    room = sale["waiting_room"]
    rows: list[tuple[str, str | Text]] = [
        ("sale", sale["sale_id"]),
        ("name", f"{sale['name']} (sku {sale['sku']})"),
        ("status", status_text(sale["status"])),
        ("stock left", stock_bar(sale["stock_left"], sale["stock_total"])),
        ("window", f"{sale['starts_at']} to {sale['ends_at']} ({window_text(sale, now)})"),
        ("units", f"held {counts['reserved']}, paid {counts['confirmed']}, "
                  f"cancelled {counts['cancelled']}, expired {counts['expired']}"),
        ("attempts", f"{counts['attempts']} ({counts['rejected']} refused, "
                     f"{counts['shed']} shed)"),
        ("limits", f"{sale['per_user_limit']} per user, "
                   + (f"{sale['holds_per_address']} held per address, "
                      if sale.get("holds_per_address") else "")
                   + f"holds last {sale['hold_seconds']} s"),
        ("waiting room", _room_text(room, sale.get("queue"))),
    ]  # fmt: skip
    for label, value in rows:
        table.add_row(label, value)
    return table


def _room_text(room: dict[str, Any], queue: dict[str, Any] | None) -> str:
    if not room.get("enabled"):
        return "off"
    pace = room.get("admit_per_second")
    text = f"on, admitting {pace}/s" if pace else "on, at the engine's measured pace"
    if queue:
        text += f"; {queue['waiting']} waiting, {queue['admitted']} admitted"
    return text
