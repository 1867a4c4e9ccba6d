"""`make loadtest`: rehearse launch day end to end and say what happened.

    python loadtest/launch_day.py                      # a private engine, ~1 minute
    python loadtest/launch_day.py --url https://engine.example --admin-token "$TOKEN"

Starts the engine (embedded Redis, in-process worker) unless --url names one, schedules a
sale that opens when the spike hits, runs locust's launch-day shape headless, lets the holds
settle, checks the invariants with `flashsale audit` (when it can reach the engine's Redis
and order store), and prints a summary: attempts, units sold, answers by code, shed by
reason, latency per outcome, oversold, lost. It also writes locust's HTML report and a chart
of request rate, outcomes and latency over time into the run's folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FLASHSALE = str(Path(sys.executable).parent / "flashsale")


def call(method: str, url: str, token: str, body: Any = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the engine under test
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        raw = response.read()
    return json.loads(raw) if raw.startswith((b"{", b"[")) else raw.decode()


@contextmanager
def local_engine(data_dir: Path, log: Path) -> Iterator[tuple[str, str]]:
    """`flashsale serve` on a free port; yields (url, admin token)."""
    env = {
        **os.environ,
        # Simulated clients' X-Forwarded-For comes through this machine's loopback: believe
        # it, so that the per-IP limit sees each shopper's address and the bots' three.
        "FLASHSALE_ADMISSION_TRUSTED_PROXIES": "127.0.0.1",
        # A limit a person never reaches and a bot farm behind three IPs soon does.
        "FLASHSALE_ADMISSION_IP_RATE_PER_SECOND": "20",
        "FLASHSALE_ADMISSION_IP_BURST": "40",
    }
    with log.open("wb") as sink:
        engine = subprocess.Popen(
            [FLASHSALE, "serve", "--port", "0", "--data-dir", str(data_dir)],
            stdout=sink, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (match := re.search(r"serving on (http://\S+)", log.read_text())):
            if engine.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield match.group(1), (data_dir / "admin-token").read_text().strip()
    finally:
        engine.terminate()
        engine.wait(30)


def run_locust(url: str, token: str, sale_id: str, out: Path, args: argparse.Namespace) -> None:
    env = {
        **os.environ,
        "LT_SALE_ID": sale_id,
        "LT_ADMIN_TOKEN": token,
        "LT_ORDERS_FILE": str(out / "accepted-orders.txt"),
        "LT_BASELINE_USERS": str(args.baseline_users),
        "LT_SPIKE_MULTIPLE": str(args.spike_multiple),
        "LT_QUIET_SECONDS": str(args.quiet_seconds),
        "LT_SPIKE_SECONDS": str(args.spike_seconds),
        "LT_DECAY_SECONDS": str(args.decay_seconds),
    }
    with (out / "locust.log").open("wb") as sink:
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
             "--host", url, "--html", str(out / "report.html"), "--csv", str(out / "stats"),
             "--csv-full-history", "--only-summary"],
            stdout=sink, stderr=subprocess.STDOUT, env=env, check=False,
        )  # fmt: skip


def wait_for_holds(url: str, token: str, sale_id: str, hold_seconds: int) -> dict[str, Any]:
    """Until no hold is pending: paid, cancelled, or expired and swept."""
    deadline = time.monotonic() + hold_seconds + 30
    while True:
        sale: dict[str, Any] = call("GET", f"{url}/admin/sales/{sale_id}", token)
        if sale["counts"]["reserved"] == 0 or time.monotonic() > deadline:
            return sale
        time.sleep(0.5)


def audit(data_dir: Path | None, sale_id: str) -> tuple[bool | None, str]:
    """(clean, report) from `flashsale audit`; (None, why) when it cannot reach the stores."""
    if data_dir is None and not os.environ.get("FLASHSALE_REDIS_URL"):
        return None, "not run: set FLASHSALE_REDIS_URL (and FLASHSALE_ORDERS_DSN) to audit"
    args = [FLASHSALE, "audit", "--sale", sale_id]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    deadline = time.monotonic() + 60
    while True:  # until the order store has caught up with the last events
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if "on their way" not in result.stdout or time.monotonic() > deadline:
            return result.returncode == 0, result.stdout.strip()
        time.sleep(1)


def lost_orders(out: Path, data_dir: Path | None) -> int | None:
    """201s the run received whose order is missing from the (local SQLite) order store."""
    accepted_file = out / "accepted-orders.txt"
    if data_dir is None or not accepted_file.exists():
        return None
    accepted = {line for line in accepted_file.read_text().split() if line}
    with sqlite3.connect(data_dir / "orders.sqlite3") as db:
        stored = {row[0] for row in db.execute("SELECT order_id FROM orders")}
    return len(accepted - stored)


def outcome_rows(out: Path) -> list[dict[str, str]]:
    stats = out / "stats_stats.csv"
    if not stats.exists():
        raise SystemExit(f"locust produced no statistics; see {out / 'locust.log'}")
    with stats.open() as handle:
        return [row for row in csv.DictReader(handle) if row["Name"] != "Aggregated"]


def shed_by_reason(metrics_text: str) -> dict[str, float]:
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^flashsale_shed_total\{reason="([^"]+)"\} (\S+)$', metrics_text, flags=re.M
        )
    }


def chart(out: Path) -> Path | None:
    """Request rate by outcome, users, and latency over time, from locust's history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = out / "stats_stats_history.csv"
    if not history.exists():
        return None
    rows = list(csv.DictReader(history.open()))
    if not rows:
        return None
    start = min(int(r["Timestamp"]) for r in rows)
    groups: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    users: dict[int, float] = {}
    latency: dict[str, dict[int, float]] = defaultdict(dict)
    for row in rows:
        t = int(row["Timestamp"]) - start
        if row["Name"] == "Aggregated":
            users[t] = float(row["User Count"])
            for q in ("50%", "95%", "99%"):
                if row[q] not in ("N/A", ""):
                    latency[q][t] = float(row[q])
            continue
        rate = float(row["Requests/s"] or 0)
        name = row["Name"]
        if name.endswith((" 201", " 200")):
            group = "succeeded (201/200)"
        elif name.endswith(" sold_out"):
            group = "sold_out"
        elif name.endswith((" overloaded", " rate_limited")):
            group = "shed (503/429)"
        else:
            group = "other answers"
        groups[group][t] += rate
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    times = sorted(users)
    top.plot(times, [users[t] for t in times], color="black")
    top.set_ylabel("simulated users")
    top.set_title("flashsale launch-day rehearsal")
    for group, series in sorted(groups.items()):
        ts = sorted(series)
        middle.plot(ts, [series[t] for t in ts], label=group)
    middle.set_ylabel("answers per second")
    middle.legend(loc="upper right")
    for q, series in latency.items():
        ts = sorted(series)
        bottom.plot(ts, [series[t] for t in ts], label=f"p{q.rstrip('%')}")
    bottom.set_ylabel("latency (ms, all requests)")
    bottom.set_xlabel("seconds since the start")
    bottom.legend(loc="upper right")
    figure.tight_layout()
    path = out / "launch-day.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def summarise(sale: dict[str, Any], rows: list[dict[str, str]], shed: dict[str, float],
              clean: bool | None, audit_text: str, lost: int | None) -> str:  # fmt: skip
    counts = sale["counts"]
    oversold = max(0, counts["reserved"] + counts["confirmed"] + sale["stock_left"]
                   - sale["stock_total"])  # fmt: skip
    lines = [
        "=== launch-day rehearsal ===",
        f"sale {sale['sale_id']}: {sale['stock_total']} units; attempts {counts['attempts']}, "
        f"units sold {counts['confirmed']} (paid) + {counts['reserved']} (still held); "
        f"cancelled {counts['cancelled']}, expired {counts['expired']}, "
        f"stock left {sale['stock_left']}",
        "",
        f"{'answer':<34} {'count':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'failed':>7}",
    ]
    for row in sorted(rows, key=lambda r: -int(r["Request Count"])):
        lines.append(
            f"{row['Type'] + ' ' + row['Name']:<34} {row['Request Count']:>8} {row['50%']:>8} "
            f"{row['95%']:>8} {row['99%']:>8} {row['Failure Count']:>7}"
        )
    lines.append("")
    lines.append("shed by reason: " + (", ".join(f"{k} {v:.0f}" for k, v in sorted(shed.items()))
                                       or "none"))  # fmt: skip
    lines.append(f"oversold: {oversold}")
    lines.append(f"lost (201s missing from the order store): {'unknown' if lost is None else lost}")
    lines.append(f"audit: {'clean' if clean else 'NOT run' if clean is None else 'FAILED'}")
    lines.append(audit_text)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an engine already running (default: start one)")
    parser.add_argument("--admin-token", default=os.environ.get("FLASHSALE_ADMIN_TOKEN", ""))
    parser.add_argument("--stock", type=int, default=300)
    parser.add_argument("--hold-seconds", type=int, default=10)
    parser.add_argument("--baseline-users", type=int, default=20)
    parser.add_argument("--spike-multiple", type=float, default=10)
    parser.add_argument("--quiet-seconds", type=float, default=15)
    parser.add_argument("--spike-seconds", type=float, default=25)
    parser.add_argument("--decay-seconds", type=float, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "results" /
                        datetime.now(UTC).strftime("launch-%Y%m%dT%H%M%SZ"))  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        data_dir: Path | None = None
        if args.url:
            url, token = args.url.rstrip("/"), args.admin.token
        else:
            data_dir = args.out / "data"
            url, token = stack.enter_context(local_engine(data_dir, args.out / "engine.log"))
        sale_id = f"launch-{int(time.time())}"
        opens = datetime.now(UTC) + timedelta(seconds=args.quiet_seconds)
        total = args.quiet_seconds + args.spike_seconds + args.decay_seconds
        call("POST", f"{url}/admin/sales", token, {
            "sale_id": sale_id, "sku": "ANNIVERSARY-1", "name": "Anniversary sale",
            "stock": args.stock, "per_user_limit": 1, "hold_seconds": args.hold_seconds,
            "starts_at": opens.isoformat().replace("+00:00", "Z"),
            "ends_at": (opens + timedelta(seconds=total + 600)).isoformat().replace("+00:00", "Z"),
        })  # fmt: skip
        print(f"sale {sale_id} opens in {args.quiet_seconds:g}s; locust runs ~{total:g}s ...")
        run_locust(url, token, sale_id, args.out, args)
        sale = wait_for_holds(url, token, sale_id, args.hold_seconds)
        shed = shed_by_reason(str(call("GET", f"{url}/metrics", token)))
        clean, audit_text = audit(data_dir, sale_id)
        lost = lost_orders(args.out, data_dir)
        text = summarise(sale, outcome_rows(args.out), shed, clean, audit_text, lost)
    picture = chart(args.out)
    print(text)
    (args.out / "summary.txt").write_text(text + "\n")
    print(f"\nreport: {args.out / 'report.html'}")
    if picture is not None:
        print(f"chart:  {picture}")
    return 0 if clean is not False and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
