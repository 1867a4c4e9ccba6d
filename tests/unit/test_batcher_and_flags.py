"""The batcher's grouping and ordering, and the sold-out flags, without Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from flashsale.admission.soldout import SoldOutFlags
from flashsale.store.batcher import PurchaseBatcher
from flashsale.store.outcomes import Attempt, PurchaseOutcome, Rejected, Rejection
from tests.unit.test_admission import Clock


class Recorder:
    """Stands in for Redis: records each batch, answers each attempt with its own outcome."""

    def __init__(self, delay: float = 0.0, fail: BaseException | None = None) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail = fail
        self.in_flight = asyncio.Event()

    async def __call__(self, sale_id: str, attempts: Sequence[Attempt]) -> list[PurchaseOutcome]:
        self.batches.append([a.order_id for a in attempts])
        self.in_flight.set()
        await asyncio.sleep(self.delay)  # Redis taking its time
        if self.fail is not None:
            raise self.fail
        return [Rejected(Rejection.SOLD_OUT, stock_left=int(a.order_id)) for a in attempts]


def attempt(n: int) -> Attempt:
    return Attempt(order_id=str(n), user_id=f"u{n}", quantity=1)


async def test_attempts_arriving_together_share_one_call_and_keep_their_order() -> None:
    run = Recorder()
    batcher = PurchaseBatcher(run, max_size=64, linger_seconds=0, max_in_flight_per_sale=1)
    outcomes = await asyncio.gather(*(batcher.submit("s", attempt(i)) for i in range(10)))
    assert run.batches == [[str(i) for i in range(10)]]
    assert [o.stock_left for o in outcomes] == list(range(10))


async def test_batches_respect_max_size_and_sales_stay_apart() -> None:
    run = Recorder()
    batcher = PurchaseBatcher(run, max_size=4, linger_seconds=0, max_in_flight_per_sale=8)
    await asyncio.gather(
        *(batcher.submit("a", attempt(i)) for i in range(10)),
        *(batcher.submit("b", attempt(100 + i)) for i in range(3)),
    )
    assert sorted(len(b) for b in run.batches) == [2, 3, 4, 4]
    assert all(len({int(o) >= 100 for o in b}) == 1 for b in run.batches)


async def test_attempts_queue_behind_a_batch_in_flight() -> None:
    run = Recorder(delay=0.05)
    batcher = PurchaseBatcher(run, max_size=64, linger_seconds=0, max_in_flight_per_sale=1)
    first = asyncio.create_task(batcher.submit("s", attempt(0)))
    await run.in_flight.wait()
    rest = [asyncio.create_task(batcher.submit("s", attempt(i))) for i in range(1, 6)]
    await asyncio.gather(first, *rest)
    assert run.batches == [["0"], ["1", "2", "3", "4", "5"]]


async def test_a_failed_call_fails_every_attempt_in_it() -> None:
    batcher = PurchaseBatcher(
        Recorder(fail=ConnectionError("down")), max_size=8, linger_seconds=0,
        max_in_flight_per_sale=1,
    )  # fmt: skip
    results = await asyncio.gather(
        *(batcher.submit("s", attempt(i)) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_an_attempt_cancelled_before_sending_never_reaches_redis() -> None:
    run = Recorder(delay=0.05)
    dropped: list[int] = []
    batcher = PurchaseBatcher(
        run, max_size=64, linger_seconds=0, max_in_flight_per_sale=1, on_dropped=dropped.append
    )
    first = asyncio.create_task(batcher.submit("s", attempt(0)))
    await run.in_flight.wait()
    doomed = asyncio.create_task(batcher.submit("s", attempt(1)))
    kept = asyncio.create_task(batcher.submit("s", attempt(2)))
    await asyncio.sleep(0)
    doomed.cancel()  # its deadline passed while it waited
    await asyncio.gather(first, kept)
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert run.batches == [["0"], ["2"]]
    assert dropped == [1]


def test_sold_out_flags_lapse_and_clear() -> None:
    clock = Clock()
    flags = SoldOutFlags(ttl=1.0, clock=clock)
    assert not flags.is_sold_out("s")
    flags.mark("s")
    assert flags.is_sold_out("s")
    clock.now += 1.0
    assert not flags.is_sold_out("s")
    flags.mark("s")
    flags.clear("s")
    assert not flags.is_sold_out("s")
