"""The history checker finds each kind of lie it claims to, on hand-made histories."""

from __future__ import annotations

from typing import Any

from tests.history import FinalState, History, Operation, Outcome, StoredOrder, check

SALE = "sale-1"


def final(
    orders: dict[str, StoredOrder],
    *,
    stock_total: int = 10,
    stock_left: int | None = None,
    cap: int = 2,
    store: dict[str, StoredOrder] | None = None,
) -> FinalState:
    held = sum(o.quantity for o in orders.values() if o.status in ("reserved", "confirmed"))
    return FinalState(
        SALE,
        stock_total,
        stock_total - held if stock_left is None else stock_left,
        cap,
        orders,
        dict(orders) if store is None else store,
    )


def bought(history: History, user: str, order_id: str, status: int = 201, **more: Any) -> Operation:
    op = history.invoke("purchase", SALE, user_id=user, quantity=1, **more)
    return op.complete(status, {"order_id": order_id, "status": "reserved"})


def test_a_truthful_history_is_valid_and_counts_what_happened() -> None:
    history = History()
    bought(history, "a", "o1")
    pending = bought(history, "b", "o2", status=202)
    history.invoke("read", SALE, order_id="o2").complete(200, {"status": "reserved"})
    history.invoke("purchase", SALE, user_id="c", quantity=1).complete(409, {"code": "sold_out"})
    history.invoke("purchase", SALE, user_id="d", quantity=1).unknown(TimeoutError())
    orders = {"o1": StoredOrder("a", 1, "reserved"), "o2": StoredOrder("b", 1, "reserved")}
    report = check(history.operations, final(orders))
    assert report.valid, report.render()
    assert (report.attempts, report.acknowledged, report.unknown, report.recovered) == (4, 1, 2, 1)
    assert pending.outcome is Outcome.INFO
    assert history.pending_order_ids() == []


def test_each_of_the_six_figures_is_found() -> None:
    history = History()
    bought(history, "a", "o1")  # told, then lost
    bought(history, "b", "o2", idempotency_key="k")
    bought(history, "b", "o3", idempotency_key="k")  # a second order under one key
    history.invoke("purchase", SALE, user_id="c", quantity=1).complete(503, {"code": "overloaded"})
    orders = {
        "o2": StoredOrder("b", 2, "reserved", "k"),
        "o3": StoredOrder("b", 1, "reserved", "k"),
        "o4": StoredOrder("c", 1, "reserved"),  # the 503'd shopper holds a unit
    }
    store = {"o2": StoredOrder("b", 2, "confirmed"), "o3": StoredOrder("b", 1, "reserved")}
    report = check(history.operations, final(orders, stock_total=3, stock_left=1, store=store))
    assert report.figures == {
        "untold": 1,
        "lost": 1,
        "duplicated": 2,  # two orders under one key, and two ids told for it
        "oversold": 2,  # 1 left + 4 held of 3
        "over_cap": 1,  # b holds 3 > 2
        "diverged": 2,  # o2's state, o4 missing from the store
    }, report.render()
    assert not report.valid


def test_a_202_answered_404_later_must_not_hold() -> None:
    history = History()
    bought(history, "a", "o1", status=202)
    history.invoke("read", SALE, order_id="o1").complete(404, {"code": "not_found"})
    assert check(history.operations, final({})).valid
    report = check(history.operations, final({"o1": StoredOrder("a", 1, "reserved")}))
    assert report.untold == 1


def test_an_acknowledged_confirm_must_be_the_final_state() -> None:
    history = History()
    bought(history, "a", "o1")
    history.invoke("confirm", SALE, order_id="o1").complete(200, {"order_id": "o1"})
    assert check(history.operations, final({"o1": StoredOrder("a", 1, "confirmed")})).valid
    report = check(history.operations, final({"o1": StoredOrder("a", 1, "expired")}))
    assert report.lost == 1


def test_an_unanswered_202_is_still_pending() -> None:
    history = History()
    bought(history, "a", "o1", status=202)
    history.invoke("read", SALE, order_id="o1").complete(200, {"status": "pending"})
    assert history.pending_order_ids() == ["o1"]


def test_a_refused_press_whose_retry_replays_an_order_was_a_lie() -> None:
    history = History()
    history.invoke("purchase", SALE, user_id="a", quantity=1, idempotency_key="k").complete(
        503, {"code": "overloaded"}
    )
    retry = history.invoke("purchase", SALE, user_id="a", quantity=1, idempotency_key="k")
    retry.complete(201, {"order_id": "o1"}, {"Idempotent-Replayed": "true"})
    orders = {"o1": StoredOrder("a", 1, "reserved", "k")}
    assert check(history.operations, final(orders)).untold == 1
    # A retry that made a fresh order (not a replay) is the shed press retried: no lie.
    retry.headers = {}
    assert check(history.operations, final(orders)).valid


def test_a_first_press_marked_replayed_is_caught() -> None:
    """The header claims an earlier request's answer; there was none."""
    history = History()
    press = history.invoke("purchase", SALE, user_id="a", quantity=1, idempotency_key="k")
    press.complete(201, {"order_id": "o1"}, {"Idempotent-Replayed": "true"})
    report = check(history.operations, final({"o1": StoredOrder("a", 1, "reserved", "k")}))
    assert report.untold == 1
    assert "no earlier press" in report.problems[0]


def test_concurrent_presses_of_one_key_may_replay_each_other() -> None:
    """The press invoked first may be answered second, with the other's order."""
    history = History()
    first = history.invoke("purchase", SALE, user_id="a", quantity=1, idempotency_key="k")
    second = history.invoke("purchase", SALE, user_id="a", quantity=1, idempotency_key="k")
    second.complete(201, {"order_id": "o1"})
    first.complete(201, {"order_id": "o1"}, {"Idempotent-Replayed": "true"})
    report = check(history.operations, final({"o1": StoredOrder("a", 1, "reserved", "k")}))
    assert report.valid, report.render()
