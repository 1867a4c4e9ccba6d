"""The shopper's use cases, with no HTTP in them: buy, look up, confirm, cancel.

A purchase passes the user's rate limit and the sold-out flag before it may reach Redis; its
outcome feeds the flag, the metrics and the sale's counters. The API decides only how each
outcome is rendered.

Each call takes the request's deadline (event-loop time): work that waits on Redis is
cancelled when it passes (queued purchases are then dropped unsent) and TimeoutError raised.
No timer is armed for answers that need no Redis at all (sold out, rate limited).
"""

from __future__ import annotations

import asyncio

from flashsale.admission.gate import Admission
from flashsale.errors import StoreUnavailableError
from flashsale.metrics import Metrics
from flashsale.pending import PendingAttempts
from flashsale.records import OrderRecord, SaleRecord
from flashsale.store.outcomes import Attempt, Pending, PurchaseOutcome, Rejected, Rejection
from flashsale.store.sales import SaleStore


class Purchases:
    def __init__(self, store: SaleStore, admission: Admission, metrics: Metrics) -> None:
        self._store = store
        self._admission = admission
        self._metrics = metrics
        self.pending = PendingAttempts(store)

    async def sale(self, sale_id: str, *, deadline: float) -> SaleRecord | None:
        async with asyncio.timeout_at(deadline):
            return await self._store.get_sale(sale_id)

    async def order(self, order_id: str, *, deadline: float) -> OrderRecord | Pending | None:
        """The order; or, for an attempt this process answered 202 and has not settled yet,
        that it is pending; else None - and then no attempt of that id will ever take effect
        (one still on its way is fenced here, so a 404 stays true)."""
        async with asyncio.timeout_at(deadline):
            order = await self._store.get_order(order_id)
            if order is not None:
                return order
            pending = self.pending.get(order_id)
            if pending is not None:
                return pending
            return await self._store.settle_attempt(order_id)

    def answer_sold_out_early(self, sale_id: str) -> Rejected | None:
        """The answer to an attempt without an Idempotency-Key on a sale this process knows
        is sold out - before its body is read: nothing in it could change the answer (a
        keyed one may be the retry of an earlier success, and needs its body). None when the
        attempt must go the whole way."""
        if not self._admission.sold_out.is_sold_out(sale_id):
            return None
        return self._sold_out_here(sale_id)

    async def purchase(
        self,
        sale_id: str,
        user_id: str,
        quantity: int,
        *,
        idempotency_key: str | None,
        fingerprint: str,
        deadline: float,
        address: str = "",
        queue_pass: bool = False,
    ) -> PurchaseOutcome | Pending:
        """Raises RateLimitedError for a user over their rate, StoreUnavailableError or
        TimeoutError when the attempt never left for Redis; every other answer is the outcome,
        Pending when it left but its outcome is not known."""
        self._admission.check_user_rate(sale_id, user_id)

        # A sale of several shards serves each user from one bucket, a sale of its own to
        # Redis and to the sold-out flags (a bucket can be sold out while another is not).
        # Until this process has met the sale, the attempt goes to the sale itself, which
        # answers `sharded` if it is (taking nothing): no extra round trip for other sales.
        def attempt_in(bucket: str) -> Attempt:  # named for the bucket its order id cites
            return self._store.attempt(
                bucket, user_id, quantity, idempotency_key, fingerprint, address,
                queue_pass=queue_pass,
            )  # fmt: skip

        bucket = self._store.known_bucket_for(sale_id, user_id)
        outcome = await self._purchase_in(bucket, attempt_in(bucket), deadline)
        if isinstance(outcome, Rejected) and outcome.reason is Rejection.SHARDED:
            async with asyncio.timeout_at(deadline):
                await self._store.learn_buckets(sale_id)
            bucket = self._store.known_bucket_for(sale_id, user_id)
            outcome = await self._purchase_in(bucket, attempt_in(bucket), deadline)
        return outcome

    async def _purchase_in(
        self, sale_id: str, attempt: Attempt, deadline: float
    ) -> PurchaseOutcome | Pending:
        """One attempt on a sale that holds its own stock (a bucket of a sharded one)."""
        admission, metrics = self._admission, self._metrics
        if admission.sold_out.is_sold_out(sale_id):
            return await self._answer_sold_out(sale_id, attempt, deadline)
        try:
            async with asyncio.timeout_at(deadline):
                outcome = await self._store.submit(sale_id, attempt)
        except TimeoutError:
            if not attempt.sent:
                raise  # never left: shed (503), nothing taken
            return self._pending(sale_id, attempt)
        except StoreUnavailableError as exc:
            if not (attempt.sent and exc.may_have_run):
                raise
            return self._pending(sale_id, attempt)
        if isinstance(outcome, Rejected) and outcome.reason is Rejection.SHARDED:
            return outcome  # not an attempt: the caller sends it to the user's bucket
        if outcome.stock_left == 0:
            admission.sold_out.mark(sale_id)
        if isinstance(outcome, Rejected):
            if outcome.reason is Rejection.OVERLOADED:
                metrics.count_shed("backlog")
            metrics.count_attempt(outcome.reason.value)
        else:
            metrics.count_attempt("ok")
        return outcome

    def _pending(self, sale_id: str, attempt: Attempt) -> Pending:
        """It reached Redis and may have taken effect: a 503 would be a lie (it says nothing
        was taken), so the answer is 202 pending, settled later."""
        self._metrics.count_attempt("pending")
        return self.pending.add(sale_id, attempt)

    async def _answer_sold_out(
        self, sale_id: str, attempt: Attempt, deadline: float
    ) -> PurchaseOutcome:
        """A sold-out sale's answer, without the stock. A request with an Idempotency-Key may
        be the retry of a purchase that succeeded before the sale sold out: Redis is asked
        for that first answer only (a read; a fresh key writes nothing and is not stored),
        so fresh keys cannot be used to reach the stock past the flag."""
        if attempt.idempotency_key:
            async with asyncio.timeout_at(deadline):
                stored = await self._store.stored_answer(sale_id, attempt)
            if stored.replayed:
                self._metrics.count_attempt(
                    stored.reason.value if isinstance(stored, Rejected) else "ok"
                )
                return stored
        return self._sold_out_here(sale_id)

    def _sold_out_here(self, sale_id: str) -> Rejected:
        """Sold out, from this process's flag. One metric increment (these come by the
        thousand): flashsale_sold_out_local_total, not purchase_attempts_total, which counts
        what Redis answered. The sale's own count is an in-process tally, flushed once a
        second."""
        self._metrics.sold_out_local.inc()
        self._admission.counts.rejected(sale_id)
        return Rejected(Rejection.SOLD_OUT, from_flag=True)

    async def confirm(self, order_id: str, *, deadline: float) -> OrderRecord | Rejected:
        return await self._finish(order_id, confirm=True, deadline=deadline)

    async def cancel(self, order_id: str, *, deadline: float) -> OrderRecord | Rejected:
        return await self._finish(order_id, confirm=False, deadline=deadline)

    async def _finish(
        self, order_id: str, *, confirm: bool, deadline: float
    ) -> OrderRecord | Rejected:
        store = self._store
        async with asyncio.timeout_at(deadline):
            outcome = await (store.confirm(order_id) if confirm else store.cancel(order_id))
            if isinstance(outcome, Rejected):
                return outcome
            order = await store.get_order(order_id)
        # None only if keys are deleted by hand between the two calls.
        return order if order is not None else Rejected(Rejection.NOT_FOUND)
