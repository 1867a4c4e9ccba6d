"""Launch day for locust: shoppers, bots and an operator around one flash sale.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 --sale-id launch \\
        --admin-token "$TOKEN" --headless

Every request is reported under the name of its route and its outcome's `code` (for example
`purchase 201`, `purchase sold_out`, `purchase overloaded`), so that locust's statistics give
counts and latency percentiles per outcome. Business answers (409s, 429 and 503 with
Retry-After) are expected outcomes, not failures; failures are what a healthy engine never
answers (5xx other than 503, 400, broken connections). Parameters are command-line options
or LT_* environment variables (see `--help` under "Custom arguments").
"""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment

# Outcomes a well-behaved engine gives during a flash sale; anything else is a failure.
EXPECTED = {
    "201", "200", "sold_out", "user_limit_reached", "sale_not_started", "sale_ended",
    "sale_paused", "order_not_pending", "rate_limited", "overloaded", "idempotency_conflict",
}  # fmt: skip
BOT_IPS = ("203.0.113.7", "203.0.113.8", "203.0.113.9")
ACCEPTED_ORDERS: list[str] = []


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--sale-id", env_var="LT_SALE_ID", default="launch")
    parser.add_argument("--admin-token", env_var="LT_ADMIN_TOKEN", default="", is_secret=True)
    parser.add_argument("--pay-ratio", env_var="LT_PAY_RATIO", type=float, default=0.6)
    parser.add_argument("--cancel-ratio", env_var="LT_CANCEL_RATIO", type=float, default=0.2)
    parser.add_argument("--max-retries", env_var="LT_MAX_RETRIES", type=int, default=3)
    parser.add_argument("--baseline-users", env_var="LT_BASELINE_USERS", type=int, default=20)
    parser.add_argument("--spike-multiple", env_var="LT_SPIKE_MULTIPLE", type=float, default=10)
    parser.add_argument("--quiet-seconds", env_var="LT_QUIET_SECONDS", type=float, default=15)
    parser.add_argument("--spike-seconds", env_var="LT_SPIKE_SECONDS", type=float, default=25)
    parser.add_argument("--decay-seconds", env_var="LT_DECAY_SECONDS", type=float, default=20)
    parser.add_argument("--orders-file", env_var="LT_ORDERS_FILE", default="")


@events.test_stop.add_listener
def _write_orders(environment: Environment, **_kwargs: Any) -> None:
    """The order ids of every 201 the run received, for the post-sale check of 'lost'."""
    target = environment.parsed_options.orders_file if environment.parsed_options else ""
    if target:
        Path(target).write_text("\n".join(ACCEPTED_ORDERS) + "\n")


def outcome(response: ResponseContextManager) -> str:
    """The answer's code (problem documents), or its status for successes."""
    if response.status_code in (200, 201):
        return str(response.status_code)
    try:
        return str(json.loads(response.text or "{}").get("code", response.status_code))
    except ValueError:
        return str(response.status_code)


def report(response: ResponseContextManager, route: str) -> str:
    code = outcome(response)
    response.request_meta["name"] = f"{route} {code}"
    if code in EXPECTED:
        response.success()
    else:
        response.failure(f"unexpected answer {response.status_code} {code}")
    return code


def retry_after(response: ResponseContextManager) -> float:
    raw = response.headers.get("Retry-After", "1") if response.headers else "1"
    try:
        return max(1.0, float(str(raw)))
    except ValueError:
        return 1.0


class Shopper(FastHttpUser):
    """Looks at the sale, buys when it opens, backs off as told, then pays, cancels or walks
    away by the configured ratios. One purchase journey per shopper."""

    weight = 8
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.user_id = f"shopper-{uuid.uuid4().hex[:12]}"
        # Each shopper has an address of their own (the bots share three).
        self.ip = f"198.51.{random.randrange(256)}.{random.randrange(1, 255)}"
        self.done = False

    @task
    def journey(self) -> None:
        if self.done:
            return
        options = self.environment.parsed_options
        sale = f"/v1/sales/{options.sale_id}"
        with self.client.get(
            sale, name="view", headers={"X-Forwarded-For": self.ip}, catch_response=True
        ) as response:
            report(response, "view")
        key = uuid.uuid4().hex
        for attempt in range(options.max_retries + 1):
            with self.client.post(
                f"{sale}/purchases",
                json={"user_id": self.user_id, "quantity": 1},
                headers={"Idempotency-Key": key, "X-Forwarded-For": self.ip},
                name="purchase",
                catch_response=True,
            ) as response:
                code = report(response, "purchase")
                wait = retry_after(response) if code in ("rate_limited", "overloaded") else 0
                order_id = response.json()["order_id"] if code == "201" else None
            if order_id is not None:
                ACCEPTED_ORDERS.append(order_id)
                self.finish(order_id)
                return
            if code == "sale_not_started":
                return  # come back on the next task run, with a new key
            if not wait or attempt == options.max_retries:
                self.done = code in ("sold_out", "sale_ended", "user_limit_reached")
                return
            self.wait_seconds(wait + random.uniform(0, wait / 2))  # jitter spreads retries

    def finish(self, order_id: str) -> None:
        self.done = True
        options = self.environment.parsed_options
        roll = random.random()
        if roll >= options.pay_ratio + options.cancel_ratio:
            return  # walks away: the hold expires
        action = "confirm" if roll < options.pay_ratio else "cancel"
        self.wait_seconds(random.uniform(0.5, 3.0))  # entering card details
        with self.client.post(
            f"/v1/orders/{order_id}/{action}", name=action, catch_response=True
        ) as response:
            report(response, action)

    def wait_seconds(self, seconds: float) -> None:
        time.sleep(seconds)  # cooperative: locust runs users on gevent, which patches sleep


class Bot(FastHttpUser):
    """Hammers the purchase route with many accounts behind a few IPs, never backing off."""

    weight = 2
    wait_time = constant(0.05)

    @task
    def grab(self) -> None:
        options = self.environment.parsed_options
        with self.client.post(
            f"/v1/sales/{options.sale_id}/purchases",
            json={"user_id": f"bot-{random.randrange(500)}", "quantity": 1},
            headers={"X-Forwarded-For": random.choice(BOT_IPS)},
            name="bot purchase",
            catch_response=True,
        ) as response:
            if report(response, "bot purchase") == "201":
                ACCEPTED_ORDERS.append(response.json()["order_id"])


class Operator(FastHttpUser):
    """Watches the sale's counters, as an operator's dashboard would."""

    fixed_count = 1
    wait_time = constant(2.0)

    @task
    def watch(self) -> None:
        options = self.environment.parsed_options
        with self.client.get(
            f"/admin/sales/{options.sale_id}",
            headers={"Authorization": f"Bearer {options.admin.token}"},
            name="operator view",
            catch_response=True,
        ) as response:
            report(response, "operator view")


class LaunchDay(LoadTestShape):
    """A quiet baseline, a spike of `spike_multiple` times it when the sale opens, a linear
    decay back to the baseline; then the test stops."""

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        if options is None:
            return None
        quiet, spike, decay = options.quiet_seconds, options.spike_seconds, options.decay_seconds
        base = options.baseline_users
        peak = int(base * options.spike_multiple)
        t = self.get_run_time()
        if t < quiet:
            return base, max(1.0, base)
        if t < quiet + spike:
            return peak, max(1.0, peak / 2)  # the wall arrives within a couple of seconds
        if t < quiet + spike + decay:
            share = (t - quiet - spike) / decay
            return int(peak - (peak - base) * share), max(1.0, peak / 10)
        return None
