"""`make loadtest`: rehearse launch day end to end, twice on the same traffic - the sale's
waiting room off (today's defaults), then on with a cap on unpaid holds per address - and say
what happened to each.

    python loadtest/launch_day.py                      # a private engine, ~3 minutes
    python loadtest/launch_day.py --url https://engine.example --admin-token "$TOKEN"

Starts the engine (embedded Redis, in-process worker) unless --url names one, measures its
purchase capacity (wrk, a few seconds), then for each run schedules a sale that opens when
the spike hits, runs locust's launch-day shape headless (honest shoppers from many addresses
who honour Retry-After; bots behind three addresses who do not, and never pay), samples the
sale while it runs, lets the holds settle, and audits it. The summary prints, for each run:
units paid by honest shoppers and by bots, units unsold, time to sell out, the share of
honest shoppers told an outcome within 2 s of asking and of those given a final answer, the
wait in the room, answers by code, oversold and lost - with the spike the load generator
actually reached as a multiple of the measured capacity. Each run's folder keeps locust's
HTML report; the chart shows both runs.
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
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
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


def run_locust(
    url: str, token: str, sale_id: str, out: Path, args: argparse.Namespace, *, room: bool
) -> None:
    env = {
        **os.environ,
        "LT_SALE_ID": sale_id,
        "LT_ADMIN_TOKEN": token,
        "LT_ORDERS_FILE": str(out / "accepted-orders.txt"),
        "LT_SHOPPERS_FILE": str(out / "shoppers.jsonl"),
        "LT_BASELINE_USERS": str(args.baseline_users),
        "LT_SPIKE_MULTIPLE": str(args.spike_multiple),
        "LT_QUIET_SECONDS": str(args.quiet_seconds),
        "LT_SPIKE_SECONDS": str(args.spike_seconds),
        "LT_SETTLE_SECONDS": str(args.settle_seconds),
        **({"LT_ROOM": "true"} if room else {}),
    }
    with (out / "locust.log").open("wb") as sink:
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
             "--host", url, "--html", str(out / "report.html"), "--csv", str(out / "stats"),
             "--csv-full-history", "--only-summary"],
            stdout=sink, stderr=subprocess.STDOUT, env=env, check=False,
        )  # fmt: skip


class Sampler:
    """The sale as its operator sees it, four times a second while a run goes on: when it
    sold out, and how its stock and paid units moved (the chart)."""

    def __init__(self, url: str, token: str, sale_id: str) -> None:
        self.url, self.token, self.sale_id = url, token, sale_id
        self.samples: list[tuple[float, int, int]] = []  # (time, stock left, units paid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                sale = call("GET", f"{self.url}/admin/sales/{self.sale_id}", self.token)
            except OSError:
                continue  # the engine busy: the next sample
            self.samples.append((time.time(), sale["stock_left"], sale["counts"]["confirmed"]))


def capacity(url: str, token: str, seconds: float) -> float:
    """Purchases a second the engine answers (wrk, 64 connections, on a sale of its own)."""
    from load_generators import wrk

    sale_id = f"capacity-{int(time.time())}"
    call("POST", f"{url}/admin/sales", token, {
        "sale_id": sale_id, "sku": "PROBE", "name": "capacity probe", "stock": 1_000_000_000,
        "per_user_limit": 1_000_000, "starts_at": "2020-01-01T00:00:00Z",
        "ends_at": "2099-01-01T00:00:00Z",
    })  # fmt: skip
    probe = f"{url}/v1/sales/{sale_id}/purchases"
    return wrk("capacity", probe, seconds, 64, HERE / "purchase-from-many.lua").rps


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


def locust_chart(out: Path) -> Path | None:
    """One run: request rate by outcome, users, and latency over time, from locust's history."""
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
    top.set_title(f"flashsale launch-day rehearsal: {out.name}")
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
    path = out / "run.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def peak_rate(out: Path) -> float:
    """The highest request rate locust reached in the run (all requests, per second)."""
    history = out / "stats_stats_history.csv"
    if not history.exists():
        return 0.0
    rates = [float(r["Requests/s"] or 0) for r in csv.DictReader(history.open())
             if r["Name"] == "Aggregated"]  # fmt: skip
    return max(rates, default=0.0)


@dataclass
class Run:
    """One rehearsal's sale and what was measured of it."""

    label: str
    sale_id: str
    opens_at: float
    out: Path
    sale: dict[str, Any] = field(default_factory=dict)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    shed: dict[str, float] = field(default_factory=dict)
    clean: bool | None = None
    audit_text: str = ""
    lost: int | None = None

    def shoppers(self) -> list[dict[str, Any]]:
        path = self.out / "shoppers.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def units_by(self, data_dir: Path | None, *, paid: bool) -> dict[str, int] | None:
        """Units paid (or held at any point, paid or not), by honest shoppers and by bots,
        from the local order store."""
        if data_dir is None:
            return None
        query = "SELECT user_id, quantity FROM orders WHERE sale_id = ?"
        if paid:
            query += " AND status = 'confirmed'"
        with sqlite3.connect(data_dir / "orders.sqlite3") as db:
            rows = db.execute(query, (self.sale_id,)).fetchall()
        units = {"honest": 0, "bots": 0}
        for user, quantity in rows:
            units["bots" if str(user).startswith("bot-") else "honest"] += int(quantity)
        return units

    def after_open(self, reached: Callable[[int, int], bool]) -> float | None:
        """Seconds from the open until a sample (stock left, units paid) first met
        `reached`; None when none did."""
        return next((t - self.opens_at for t, left, paid in self.samples if reached(left, paid)),
                    None)  # fmt: skip


def _after(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s after the open"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def _quantiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (
        f"p50 {at(0.5):.1f} s, p90 {at(0.9):.1f} s, p99 {at(0.99):.1f} s, max {ordered[-1]:.1f} s"
    )


def summarise_run(run: Run, data_dir: Path | None) -> list[str]:
    sale, counts = run.sale, run.sale["counts"]
    oversold = max(0, counts["reserved"] + counts["confirmed"] + sale["stock_left"]
                   - sale["stock_total"])  # fmt: skip
    shoppers = run.shoppers()
    asked = [s for s in shoppers if "asked_at" in s]
    quick = [s for s in asked if s.get("told_at") and s["told_at"] - s["asked_at"] <= 2.0]
    first = [s for s in asked if s.get("first_answer_at")
             and s["first_answer_at"] - s["asked_at"] <= 2.0]  # fmt: skip
    final = [s for s in asked if s.get("final") in ("bought", "sold_out")]
    paid = run.units_by(data_dir, paid=True)
    held = run.units_by(data_dir, paid=False)
    total = sale["stock_total"]
    sold_out = run.after_open(lambda left, _paid: left == 0)
    most_taken = run.after_open(lambda left, _paid: left <= total * 0.05)
    last_paid = run.after_open(lambda _left, paid: paid >= counts["confirmed"] > 0)
    lines = [
        f"--- {run.label}: sale {run.sale_id}, {sale['stock_total']} units ---",
        "units paid: " + ("unknown (no local order store)" if paid is None else
                          f"{paid['honest']} by honest shoppers, {paid['bots']} by bots "
                          f"({_share(paid['honest'], paid['honest'] + paid['bots'])} honest)"),
        "units held at some point (paid or not): " + ("unknown" if held is None else
                                                      f"{held['honest']} by honest shoppers, "
                                                      f"{held['bots']} by bots"),
        f"units unsold at the end: {sale['stock_left']} (cancelled {counts['cancelled']}, "
        f"expired {counts['expired']} along the way)",
        f"time to sell out (no unit left, held or paid): {_after(sold_out)}; to 95% taken: "
        f"{_after(most_taken)}; to the last unit paid: {_after(last_paid)}",
        f"honest shoppers: {len(asked)} asked; told an outcome within 2 s of asking: "
        f"{_share(len(first), len(asked))} (a final one - bought or sold out - within 2 s: "
        f"{_share(len(quick), len(asked))}); given a final answer at all: "
        f"{_share(len(final), len(asked))}",
        "wait in the room (honest, join to admission or sold out): "
        + _quantiles([s["room_wait_seconds"] for s in asked if "room_wait_seconds" in s]),
        f"oversold: {oversold}; lost (201s missing from the order store): "
        f"{'unknown' if run.lost is None else run.lost}; audit: "
        f"{'clean' if run.clean else 'NOT run' if run.clean is None else 'FAILED'}",
        "shed by reason: " + (", ".join(f"{k} {v:.0f}" for k, v in sorted(run.shed.items()))
                              or "none"),
        "",
        f"{'answer':<40} {'count':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}",
    ]  # fmt: skip
    for row in sorted(outcome_rows(run.out), key=lambda r: -int(r["Request Count"])):
        lines.append(
            f"{row['Type'] + ' ' + row['Name']:<40} {row['Request Count']:>8} {row['50%']:>8} "
            f"{row['99%']:>8} {row['Failure Count']:>7}"
        )
    return lines


def comparison_chart(runs: list[Run], out: Path) -> Path:
    """Both runs on one time axis (seconds since each sale opened): stock left and units
    paid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for run in runs:
        times = [t - run.opens_at for t, _, _ in run.samples]
        top.plot(times, [left for _, left, _ in run.samples], label=run.label)
        bottom.plot(times, [paid for _, _, paid in run.samples], label=run.label)
    top.set_ylabel("stock left")
    top.set_title("launch-day rehearsal: the waiting room off and on, same traffic")
    top.legend(loc="upper right")
    bottom.set_ylabel("units paid")
    bottom.set_xlabel("seconds since the sale opened")
    bottom.legend(loc="lower right")
    figure.tight_layout()
    path = out / "launch-day.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def rehearse(url: str, token: str, args: argparse.Namespace, room: bool) -> Run:
    label = "room on" if room else "room off"
    out = args.out / label.replace(" ", "-")
    out.mkdir(parents=True, exist_ok=True)
    sale_id = f"launch-{'room' if room else 'open'}-{int(time.time())}"
    opens = datetime.now(UTC) + timedelta(seconds=args.quiet_seconds)
    total = args.quiet_seconds + args.spike_seconds + args.settle_seconds
    body: dict[str, Any] = {
        "sale_id": sale_id, "sku": "ANNIVERSARY-1", "name": "Anniversary sale",
        "stock": args.stock, "per_user_limit": 1, "hold_seconds": args.hold_seconds,
        "starts_at": _rfc3339(opens), "ends_at": _rfc3339(opens + timedelta(seconds=total + 600)),
    }  # fmt: skip
    if room:
        body["waiting_room"] = {"enabled": True, "admit_per_second": args.admit_per_second}
        body["holds_per_address"] = args.holds_per_address
    call("POST", f"{url}/admin/sales", token, body)
    print(f"{label}: sale {sale_id} opens in {args.quiet_seconds:g}s; locust runs up to "
          f"{total:g}s, until every honest shopper has a final answer ...")  # fmt: skip
    shed_before = shed_by_reason(str(call("GET", f"{url}/metrics", token)))
    run = Run(label, sale_id, opens.timestamp(), out)
    with Sampler(url, token, sale_id) as sampler:
        run_locust(url, token, sale_id, out, args, room=room)
        run.sale = wait_for_holds(url, token, sale_id, args.hold_seconds)
    run.samples = sampler.samples
    shed_after = shed_by_reason(str(call("GET", f"{url}/metrics", token)))
    run.shed = {k: v - shed_before.get(k, 0.0) for k, v in shed_after.items()
                if v - shed_before.get(k, 0.0)}  # fmt: skip
    return run


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an engine already running (default: start one)")
    parser.add_argument("--admin-token", default=os.environ.get("FLASHSALE_ADMIN_TOKEN", ""))
    parser.add_argument("--stock", type=int, default=300)
    parser.add_argument("--hold-seconds", type=int, default=10)
    # Enough honest shoppers at the spike (80% of the users) that their demand exceeds the
    # stock even though only 60% of them pay.
    parser.add_argument("--baseline-users", type=int, default=40)
    parser.add_argument("--spike-multiple", type=float, default=20)
    parser.add_argument("--quiet-seconds", type=float, default=15)
    parser.add_argument("--spike-seconds", type=float, default=25)
    parser.add_argument(
        "--settle-seconds", type=float, default=180,
        help="after the spike, at most: no new shoppers while those there finish",
    )  # fmt: skip
    parser.add_argument("--admit-per-second", type=float, default=None,
                        help="the room's pace (default: the engine's own)")  # fmt: skip
    parser.add_argument("--holds-per-address", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" /
                        datetime.now(UTC).strftime("launch-%Y%m%dT%H%M%SZ"))  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        data_dir: Path | None = None
        if args.url:
            url, token = args.url.rstrip("/"), args.admin_token
        else:
            data_dir = args.out / "data"
            url, token = stack.enter_context(local_engine(data_dir, args.out / "engine.log"))
        measured = capacity(url, token, 3)
        runs = [rehearse(url, token, args, room) for room in (False, True)]
        for run in runs:
            run.clean, run.audit_text = audit(data_dir, run.sale_id)
            run.lost = lost_orders(run.out, data_dir)
    lines = [
        "=== launch-day rehearsal: the waiting room off, then on, same traffic ===",
        f"engine capacity measured first: {measured:,.0f} purchases/s (wrk, 64 connections)",
    ]
    for run in runs:
        peak = peak_rate(run.out)
        lines.append(
            f"{run.label}: locust's peak {peak:,.0f} requests/s = {peak / measured:.2f}x that "
            "capacity (what one locust process reached here; the spike asks for "
            f"{args.spike_multiple:g}x the baseline users)"
        )
    for run in runs:
        lines += ["", *summarise_run(run, data_dir)]
        locust_chart(run.out)
    text = "\n".join(lines)
    picture = comparison_chart(runs, args.out)
    print(text)
    (args.out / "summary.txt").write_text(text + "\n")
    for run in runs:
        print(f"report ({run.label}): {run.out / 'report.html'}")
    print(f"chart: {picture}")
    return 0 if all(r.clean is not False and not r.lost for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
