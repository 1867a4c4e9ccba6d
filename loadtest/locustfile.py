"""Launch day for locust: shoppers, bots and an operator around one flash sale, with its
waiting room on or off (`--room`).

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
    "queue_required", "hold_limit_reached", "waiting", "admitted", "expired",
}  # fmt: skip
BOT_IPS = ("203.0.113.7", "203.0.113.8", "203.0.113.9")
ACCEPTED_ORDERS: list[str] = []
# What each honest shopper experienced, for the rehearsal's summary (one JSON object each).
SHOPPER_RECORDS: list[dict[str, Any]] = []
# Honest shoppers who have asked and not yet heard a final answer: the settling phase ends
# when there are none (or at --settle-seconds).
UNANSWERED: set[str] = set()


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
    parser.add_argument("--settle-seconds", env_var="LT_SETTLE_SECONDS", type=float, default=180)
    parser.add_argument("--orders-file", env_var="LT_ORDERS_FILE", default="")
    parser.add_argument("--shoppers-file", env_var="LT_SHOPPERS_FILE", default="")
    parser.add_argument(
        "--room", env_var="LT_ROOM", action="store_true",
        help="the sale has a waiting room: join it, buy with its token",
    )  # fmt: skip


@events.test_stop.add_listener
def _write_orders(environment: Environment, **_kwargs: Any) -> None:
    """The order ids of every 201 the run received, for the post-sale check of 'lost'."""
    options = environment.parsed_options
    if options is None:
        return
    if options.orders_file:
        Path(options.orders_file).write_text("\n".join(ACCEPTED_ORDERS) + "\n")
    if options.shoppers_file:
        Path(options.shoppers_file).write_text(
            "".join(json.dumps(record) + "\n" for record in SHOPPER_RECORDS)
        )


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
    """An honest shopper from an address of their own: looks at the sale, buys once it opens
    (through the waiting room when it is on: join, poll as told, buy with the token), backs
    off as told, then pays, cancels or walks away by the configured ratios. One journey each;
    what they were told, and when, is recorded for the summary."""

    weight = 8
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.user_id = f"shopper-{uuid.uuid4().hex[:12]}"
        self.ip = f"198.51.{random.randrange(256)}.{random.randrange(1, 255)}"
        self.done = False
        self.record: dict[str, Any] = {"user": self.user_id}

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
        if "asked_at" not in self.record:
            self.record["asked_at"] = time.time()
            UNANSWERED.add(self.user_id)
        if options.room:
            self.through_the_room(sale)
        else:
            self.buy(sale, {})

    def through_the_room(self, sale: str) -> None:
        with self.client.post(
            f"{sale}/queue", json={"user_id": self.user_id}, name="join",
            headers={"X-Forwarded-For": self.ip}, catch_response=True,
        ) as response:  # fmt: skip
            code = report(response, "join")
            if code not in ("200", "201"):
                if code in ("rate_limited", "overloaded"):
                    self.wait_seconds(retry_after(response))
                return  # not open yet (sale_not_started) or refused: the next task run
            state = response.json()
        self.record.setdefault("first_answer_at", time.time())
        joined_at = time.time()
        while state["status"] == "waiting":
            self.wait_seconds(state["poll_after_seconds"])
            with self.client.get(
                f"{sale}/queue/{state['ticket']}", name="queue status",
                headers={"X-Forwarded-For": self.ip}, catch_response=True,
            ) as response:  # fmt: skip
                code = report(response, "queue status")
                if code == "200":
                    state = response.json()
                    report_status(response, state["status"])
                elif code in ("rate_limited", "overloaded"):
                    self.wait_seconds(retry_after(response))
        self.record["room_wait_seconds"] = time.time() - joined_at
        if state["status"] == "admitted":
            self.buy(sale, {"Purchase-Token": state["purchase_token"]})
        else:
            self.tell(state["status"])  # sold_out, or expired

    def buy(self, sale: str, headers: dict[str, str]) -> None:
        options = self.environment.parsed_options
        key = uuid.uuid4().hex
        for attempt in range(options.max_retries + 1):
            with self.client.post(
                f"{sale}/purchases",
                json={"user_id": self.user_id, "quantity": 1},
                headers={"Idempotency-Key": key, "X-Forwarded-For": self.ip, **headers},
                name="purchase",
                catch_response=True,
            ) as response:
                code = report(response, "purchase")
                wait = retry_after(response) if code in ("rate_limited", "overloaded") else 0
                order_id = response.json()["order_id"] if code == "201" else None
            if code not in ("rate_limited", "overloaded"):
                self.record.setdefault("first_answer_at", time.time())
            if order_id is not None:
                ACCEPTED_ORDERS.append(order_id)
                self.tell("bought")
                self.finish(order_id)
                return
            if code == "sale_not_started":
                return  # come back on the next task run, with a new key
            if not wait or attempt == options.max_retries:
                final = code in ("sold_out", "sale_ended", "user_limit_reached")
                self.done = final
                if final or options.room:
                    self.tell(code)
                return
            self.wait_seconds(wait + random.uniform(0, wait / 2))  # jitter spreads retries

    def tell(self, final: str) -> None:
        """The shopper's journey ended with this answer."""
        self.done = True
        self.record.update(final=final, told_at=time.time())
        SHOPPER_RECORDS.append(self.record)
        UNANSWERED.discard(self.user_id)

    def finish(self, order_id: str) -> None:
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

    def on_stop(self) -> None:
        if not self.done and "asked_at" in self.record:
            self.record.update(final="no answer", told_at=None)
            SHOPPER_RECORDS.append(self.record)

    def wait_seconds(self, seconds: float) -> None:
        time.sleep(seconds)  # cooperative: locust runs users on gevent, which patches sleep


def report_status(response: ResponseContextManager, status: str) -> None:
    """A queue poll is reported under what it said (waiting, admitted, sold_out, expired)."""
    response.request_meta["name"] = f"queue status {status}"


class Bot(FastHttpUser):
    """Many accounts behind a few addresses, never backing off, never paying. With the room
    on, each account joins the queue and polls as fast as it likes; admitted ones grab."""

    weight = 2
    wait_time = constant(0.05)

    def on_start(self) -> None:
        self.tickets: dict[str, str] = {}

    @task
    def grab(self) -> None:
        options = self.environment.parsed_options
        user, ip = f"bot-{random.randrange(500)}", random.choice(BOT_IPS)
        sale = f"/v1/sales/{options.sale_id}"
        headers = {"X-Forwarded-For": ip}
        if options.room:
            token = self.queue(sale, user, headers)
            if token is None:
                return
            headers["Purchase-Token"] = token
        with self.client.post(
            f"{sale}/purchases", json={"user_id": user, "quantity": 1}, headers=headers,
            name="bot purchase", catch_response=True,
        ) as response:  # fmt: skip
            if report(response, "bot purchase") == "201":
                ACCEPTED_ORDERS.append(response.json()["order_id"])

    def queue(self, sale: str, user: str, headers: dict[str, str]) -> str | None:
        """The account's purchase token once the room admitted it, else None."""
        ticket = self.tickets.get(user)
        if ticket is None:
            with self.client.post(
                f"{sale}/queue", json={"user_id": user}, headers=headers, name="bot join",
                catch_response=True,
            ) as response:  # fmt: skip
                if report(response, "bot join") not in ("200", "201"):
                    return None
                ticket = self.tickets[user] = response.json()["ticket"]
        with self.client.get(
            f"{sale}/queue/{ticket}", headers=headers, name="bot queue status",
            catch_response=True,
        ) as response:  # fmt: skip
            if report(response, "bot queue status") != "200":
                return None
            state = response.json()
        if state["status"] in ("sold_out", "expired"):
            self.tickets.pop(user, None)  # joins again (at the back) next time
        token = state.get("purchase_token")
        return str(token) if token else None


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
    """A quiet baseline, a spike of `spike_multiple` times it when the sale opens, then no new
    arrivals while those there finish (a waiting room's shoppers keep their places; nobody is
    made to leave mid-queue) - until every honest shopper who asked has a final answer, or
    `settle_seconds` pass; then the test stops."""

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        if options is None:
            return None
        quiet, spike, settle = options.quiet_seconds, options.spike_seconds, options.settle_seconds
        base = options.baseline_users
        peak = int(base * options.spike_multiple)
        t = self.get_run_time()
        if t < quiet:
            return base, max(1.0, base)
        if t < quiet + spike or (t < quiet + spike + settle and UNANSWERED):
            return peak, max(1.0, peak / 2)  # the wall arrives within a couple of seconds
        return None
