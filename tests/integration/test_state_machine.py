"""The scripts against a model, by Hypothesis: random sequences of purchases (keyed or not,
of 1 to 3 units), retries of the same attempt, confirms, cancels, expiries, restocks,
pauses, ends and Redis restarts, on a real Redis. After every step the stock adds up
(invariant 1), nobody holds more than the limit (2), no key took stock twice (4), every order
in Redis was answered to its shopper (5), and every answer is the one the model predicts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from flashsale import keys
from flashsale.ids import new_order_id
from flashsale.metrics import Metrics
from flashsale.records import NewSale, SaleChange
from flashsale.runtime.redis_server import RedisServer
from flashsale.settings import Settings
from flashsale.store.batcher import PurchaseBatcher
from flashsale.store.client import connect_single
from flashsale.store.outcomes import Rejected, Rejection, Reservation, Settled
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Scripts
from flashsale.worker.sweeper import HoldSweeper
from tests.servers import require_binary

pytestmark = pytest.mark.slow
T = TypeVar("T")
USERS = ("ann", "bob", "cyd")
KEYS = ("k1", "k2")
LIMIT = 3


@dataclass
class Model:
    stock_total: int
    stock_left: int
    paused: bool = False
    ended: bool = False
    orders: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # id: user, qty, state
    # (user, key): the body's fingerprint and the first answer (an order id or a refusal).
    keyed: dict[tuple[str, str], tuple[str, str | Rejection]] = field(default_factory=dict)

    def held(self, user: str) -> int:
        return sum(q for u, q, s in self.orders.values() if u == user and s in LIVE)

    def decide(self, user: str, quantity: int) -> Rejection | None:
        if self.ended:
            return Rejection.SALE_ENDED
        if self.paused:
            return Rejection.SALE_PAUSED
        if self.stock_left == 0:
            return Rejection.SOLD_OUT
        if self.held(user) + quantity > LIMIT:
            return Rejection.USER_LIMIT_REACHED
        if quantity > self.stock_left:
            return Rejection.SOLD_OUT
        return None


LIVE = ("reserved", "confirmed")


class SaleMachine(RuleBasedStateMachine):
    def __init__(self, env: Environment) -> None:
        super().__init__()
        self.env = env
        self.sale_id = f"sm-{new_order_id('x')}"
        now = int(time.time() * 1000)
        created = env.run(
            env.store.create_sale(
                self.sale_id,
                NewSale("SKU", "model", 4, now - 60_000, now + 3_600_000, LIMIT, 600),
            )
        )
        assert not isinstance(created, Rejected)
        self.model = Model(stock_total=4, stock_left=4)
        self.last: tuple[str, str, int] | None = None  # the last attempt: id, user, quantity
        self.restarts = 0

    # -- shoppers --------------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), quantity=st.integers(1, 3), key=st.sampled_from(KEYS))
    def purchase_keyed(self, user: str, quantity: int, key: str) -> None:
        fingerprint = f"q{quantity}"
        outcome = self.env.run(
            self.env.store.purchase(
                self.sale_id, user, quantity, idempotency_key=key, fingerprint=fingerprint
            )
        )
        first = self.model.keyed.get((user, key))
        if first is not None:
            seen_fingerprint, answer = first
            assert outcome.replayed
            if seen_fingerprint != fingerprint:
                assert outcome == Rejected(Rejection.IDEMPOTENCY_CONFLICT, replayed=True)
            elif isinstance(answer, Rejection):
                assert outcome == Rejected(answer, replayed=True)
            else:
                assert isinstance(outcome, Reservation)
                assert outcome.order_id == answer
            return
        self._apply(user, quantity, outcome)
        if isinstance(outcome, Reservation):
            self.model.keyed[(user, key)] = (fingerprint, outcome.order_id)
        else:
            self.model.keyed[(user, key)] = (fingerprint, outcome.reason)

    @rule(user=st.sampled_from(USERS), quantity=st.integers(1, 3))
    def purchase(self, user: str, quantity: int) -> None:
        order_id = new_order_id(self.sale_id)
        outcome = self.env.run(
            self.env.store.purchase(self.sale_id, user, quantity, order_id=order_id)
        )
        self._apply(user, quantity, outcome)
        self.last = (order_id, user, quantity)

    @precondition(lambda self: self.last is not None)
    @rule()
    def retry_the_last_attempt(self) -> None:
        """The same attempt sent again (a lost reply): its first outcome, nothing taken."""
        assert self.last is not None
        order_id, user, quantity = self.last
        outcome = self.env.run(
            self.env.store.purchase(self.sale_id, user, quantity, order_id=order_id)
        )
        if order_id in self.model.orders:
            assert isinstance(outcome, Reservation)
            assert (outcome.order_id, outcome.replayed) == (order_id, False)
        else:  # refused the first time: decided afresh, like a new attempt of that id
            self._apply(user, quantity, outcome, order_id)

    def _apply(self, user: str, quantity: int, outcome: Any, order_id: str | None = None) -> None:
        expected = self.model.decide(user, quantity)
        if expected is None:
            assert isinstance(outcome, Reservation), outcome
            assert not outcome.replayed
            assert order_id in (None, outcome.order_id)
            self.model.orders[outcome.order_id] = (user, quantity, "reserved")
            self.model.stock_left -= quantity
        else:
            assert outcome == Rejected(expected), (outcome, expected)

    @precondition(lambda self: bool(self.model.orders))
    @rule(data=st.data(), confirm=st.booleans())
    def finish(self, data: st.DataObject, confirm: bool) -> None:
        order_id = data.draw(st.sampled_from(list(self.model.orders)))  # in creation order
        user, quantity, state = self.model.orders[order_id]
        store = self.env.store
        outcome = self.env.run(store.confirm(order_id) if confirm else store.cancel(order_id))
        wanted = "confirmed" if confirm else "cancelled"
        if state == "reserved":
            assert outcome == Settled(wanted, replayed=False)
            self.model.orders[order_id] = (user, quantity, wanted)
            if not confirm:
                self.model.stock_left += quantity
        elif state == wanted:
            assert outcome == Settled(wanted, replayed=True)
        else:
            assert outcome == Rejected(Rejection.ORDER_NOT_PENDING)

    @precondition(lambda self: any(s == "reserved" for _u, _q, s in self.model.orders.values()))
    @rule(data=st.data())
    def let_a_hold_expire(self, data: st.DataObject) -> None:
        """Time passes for one hold (its expiry moved into the past), then the sweeper runs."""
        reserved = [o for o, (_u, _q, s) in self.model.orders.items() if s == "reserved"]
        order_id = data.draw(st.sampled_from(reserved))
        self.env.run(self.env.backdate(self.sale_id, order_id))
        assert self.env.run(self.env.sweeper.sweep_once()) >= 1
        user, quantity, _state = self.model.orders[order_id]
        self.model.orders[order_id] = (user, quantity, "expired")
        self.model.stock_left += quantity

    # -- operators -------------------------------------------------------------------------

    @rule(amount=st.integers(1, 3))
    def add_stock(self, amount: int) -> None:
        outcome = self.env.run(
            self.env.store.patch_sale(self.sale_id, SaleChange(add_stock=amount))
        )
        if self.model.ended:
            assert outcome == Rejected(Rejection.SALE_ENDED)
            return
        assert not isinstance(outcome, Rejected)
        self.model.stock_total += amount
        self.model.stock_left += amount

    @rule(paused=st.booleans())
    def pause_or_resume(self, paused: bool) -> None:
        outcome = self.env.run(self.env.store.patch_sale(self.sale_id, SaleChange(paused=paused)))
        if self.model.ended:
            assert outcome == Rejected(Rejection.SALE_ENDED)
        else:
            self.model.paused = paused

    @precondition(lambda self: not self.model.ended)
    @rule()
    def end(self) -> None:
        assert not isinstance(self.env.run(self.env.store.end_sale(self.sale_id)), Rejected)
        self.model.ended = True

    @precondition(lambda self: self.restarts < 2)  # each costs a process start
    @rule()
    def restart_redis(self) -> None:
        """kill -9 and start again on the same append-only file: nothing acknowledged is lost."""
        self.env.restart()
        self.restarts += 1

    # -- what must hold after every step ---------------------------------------------------

    @invariant()
    def redis_agrees_with_the_model(self) -> None:
        sale, orders, held = self.env.run(self.env.read(self.sale_id))
        units = {state: 0 for state in ("reserved", "confirmed", "cancelled", "expired")}
        per_user: dict[str, int] = {}
        keyed: set[tuple[str, str]] = set()
        for order in orders.values():
            units[order["status"]] += int(order["quantity"])
            if order["status"] in LIVE:
                per_user[order["user_id"]] = per_user.get(order["user_id"], 0) + int(
                    order["quantity"]
                )
            if order.get("idempotency_key"):
                pair = (order["user_id"], order["idempotency_key"])
                assert pair not in keyed, f"invariant 4: {pair} took stock twice"
                keyed.add(pair)
        stock_left, stock_total = int(sale["stock_left"]), int(sale["stock_total"])
        # 1. Never oversold.
        assert stock_left >= 0
        assert stock_left + units["reserved"] + units["confirmed"] == stock_total
        # 2. Nobody above the cap.
        assert all(n <= LIMIT for n in per_user.values()), per_user
        assert {u: n for u, n in held.items() if n} == per_user
        # 5. Every order in Redis was answered to its shopper (the model holds what was told).
        assert set(orders) == set(self.model.orders)
        assert {o: v["status"] for o, v in orders.items()} == {
            o: s for o, (_u, _q, s) in self.model.orders.items()
        }
        assert (stock_left, stock_total) == (self.model.stock_left, self.model.stock_total)


class Environment:
    """A durable private Redis (restartable), the store on it, and one event loop to run
    the async store from Hypothesis' synchronous steps."""

    def __init__(self, directory: Path, engine_settings: Settings) -> None:
        self.server = RedisServer(directory, binary=require_binary("redis-server"), durable=True)
        self.server.start()
        self.loop = asyncio.new_event_loop()
        own = engine_settings.replace(redis_url=self.server.url)
        self.redis = connect_single(own)
        scripts = Scripts.register(self.redis)
        self.store = SaleStore(self.redis, scripts, 3600)
        self.batcher = None
        if own.batching.enabled:
            self.batcher = PurchaseBatcher.from_settings(self.store.purchase_batch, own)
            self.store.use_batcher(self.batcher)
        self.sweeper = HoldSweeper(self.redis, scripts, Metrics(), batch_size=50)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def restart(self) -> None:
        self.server.kill()
        self.server.start()

    async def backdate(self, sale_id: str, order_id: str) -> None:
        await self.redis.hset(keys.order(sale_id, order_id), "expires_at", 1)
        await self.redis.zadd(keys.holds(sale_id), {order_id: 1})

    async def read(
        self, sale_id: str
    ) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, int]]:
        sale = {str(k): str(v) for k, v in (await self.redis.hgetall(keys.sale(sale_id))).items()}
        orders = {}
        for order_id in await self.redis.smembers(keys.orders(sale_id)):
            fields = await self.redis.hgetall(keys.order(sale_id, str(order_id)))
            orders[str(order_id)] = {str(k): str(v) for k, v in fields.items()}
        held = {str(u): int(n) for u, n in (await self.redis.hgetall(keys.held(sale_id))).items()}
        return sale, orders, held

    def close(self) -> None:
        if self.batcher is not None:
            self.run(self.batcher.close())
        self.run(self.redis.aclose())
        self.loop.close()
        self.server.stop()


@pytest.fixture
def environment(tmp_path: Path, settings: Settings) -> Iterator[Environment]:
    env = Environment(tmp_path / "redis", settings)
    yield env
    env.close()


def test_the_scripts_keep_the_invariants_whatever_the_order(environment: Environment) -> None:
    class OnThisRedis(SaleMachine):
        def __init__(self) -> None:
            super().__init__(environment)

    run_state_machine_as_test(
        OnThisRedis,
        settings=settings(
            max_examples=200,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
