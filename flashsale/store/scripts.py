"""One typed method per Lua script in lua/: the only place KEYS and ARGV are built, and the
one place each script's reply becomes a Python value."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from flashsale import keys
from flashsale.records import NewSale, OrderRecord, SaleChange, WaitingRoom
from flashsale.store.lua import script_source
from flashsale.store.outcomes import (
    Attempt,
    PurchaseOutcome,
    Rejected,
    Rejection,
    Reservation,
    Settled,
    SettleOutcome,
)
from flashsale.store.replicas import NO_WAIT, ReplicaWait, call_replicated

ScriptObserver = Callable[[str, float], None]
# A batch of counts is retried every second until Redis takes it; an hour covers any outage
# a process lives through with the batch in hand.
COUNTED_MARKER_TTL_MS = 3_600_000
# A fence outlives any call that could still be on its way to Redis by far.
FENCE_TTL_MS = 24 * 3_600_000
# A transfer's arrival is remembered far past the rebalancer's retries of it.
TRANSFER_MARKER_TTL_MS = 24 * 3_600_000
# An operator's change is remembered as long as an Idempotency-Key is (the contract's 24 h).
APPLIED_MARKER_TTL_MS = 24 * 3_600_000


@dataclass(frozen=True)
class _Script:
    name: str
    script: AsyncScript


@dataclass(frozen=True)
class _Bound:
    """Each script registered once; redis-py's AsyncScript reloads one Redis has forgotten."""

    purchase: _Script
    purchase_batch: _Script
    confirm: _Script
    cancel: _Script
    expire_holds: _Script
    create_sale: _Script
    patch_sale: _Script
    end_sale: _Script
    trim_events: _Script
    add_counts: _Script
    replay_dead_letter: _Script
    dead_letter: _Script
    retire_sale: _Script
    settle_attempt: _Script
    probe: _Script
    read_sale: _Script
    restore_order: _Script
    take_stock: _Script
    give_stock: _Script
    queue_join: _Script
    queue_tick: _Script
    queue_seen: _Script
    queue_state: _Script


class Scripts:
    def __init__(
        self,
        redis: Redis,
        bound: _Bound,
        observe: ScriptObserver | None = None,
        wait: ReplicaWait = NO_WAIT,
    ) -> None:
        self._redis = redis
        self._bound = bound
        self._observe = observe or (lambda _name, _seconds: None)
        self._wait = wait

    @classmethod
    def register(
        cls, redis: Redis, observe: ScriptObserver | None = None, wait: ReplicaWait = NO_WAIT
    ) -> Scripts:
        """`observe(script, seconds)` hears the duration of every call (for metrics); `wait`
        makes each purchase wait for replicas to have it before its answer."""
        scripts = {
            f.name: _Script(f.name, redis.register_script(script_source(f.name)))
            for f in fields(_Bound)
        }
        return cls(redis, _Bound(**scripts), observe, wait)

    async def _call(self, script: _Script, script_keys: list[str], args: list[Any]) -> Any:
        started = time.perf_counter()
        result = await script.script(keys=script_keys, args=args)
        self._observe(script.name, time.perf_counter() - started)
        return result

    async def _call_replicated(
        self, script: _Script, script_keys: list[str], args: list[Any]
    ) -> Any:
        """`_call`, answering only once `wait.replicas` replicas have the writes."""
        if not self._wait.replicas:
            return await self._call(script, script_keys, args)
        started = time.perf_counter()
        result = await call_replicated(self._redis, self._wait, script.script, script_keys, args)
        self._observe(script.name, time.perf_counter() - started)
        return result

    async def probe(self) -> int:
        """A real script round trip; the Redis server's time in ms."""
        return int(await self._call(self._bound.probe, [], []))

    async def read_sale(self, sale_id: str) -> tuple[int, dict[str, str]]:
        """(the time of the Redis holding the sale in ms, the sale's hash; empty: no sale)."""
        now, *flat = await self._call(self._bound.read_sale, [keys.sale(sale_id)], [])
        return int(now), dict(zip(flat[::2], flat[1::2], strict=True))

    async def create_sale(
        self,
        sale_id: str,
        ref: str,
        sale: NewSale,
        creation_id: str,
        bucket_ids: Sequence[str] = (),
    ) -> Rejected | None:
        outcome, _now = await self._call(
            self._bound.create_sale,
            [keys.sale(sale_id), keys.events(sale_id)],
            [
                sale.sku, sale.name, ref, sale.stock, sale.starts_at, sale.ends_at,
                sale.per_user_limit, sale.hold_seconds, keys.ORDER_STORE_GROUP, creation_id,
                sale.holds_per_address or 0, *_room_args(sale.waiting_room), sale.shards,
                ",".join(bucket_ids),
            ],
        )  # fmt: skip
        return _refusal(outcome)

    async def patch_sale(
        self, sale_id: str, change: SaleChange, change_id: str, fingerprint: str
    ) -> Rejected | None:
        paused = "" if change.paused is None else int(change.paused)
        outcome, _now = await self._call(
            self._bound.patch_sale,
            [keys.sale(sale_id), keys.patch_applied(sale_id, change_id)],
            [
                _optional(change.add_stock), _optional(change.starts_at),
                _optional(change.ends_at), paused, _optional(change.per_user_limit), sale_id,
                fingerprint, APPLIED_MARKER_TTL_MS, _optional(change.holds_per_address),
                *(_room_args(change.waiting_room) if change.waiting_room else ("",) * 4),
            ],
        )  # fmt: skip
        return _refusal(outcome)

    async def end_sale(self, sale_id: str) -> Rejected | None:
        outcome, _now = await self._call(self._bound.end_sale, [keys.sale(sale_id)], [])
        return _refusal(outcome)

    async def purchase(
        self,
        sale_id: str,
        attempt: Attempt,
        idempotency_ttl_ms: int,
        max_backlog: int,
        *,
        replay_only: bool = False,
    ) -> PurchaseOutcome:
        """One attempt. `replay_only`: the stored answer to this attempt or its idempotency
        key, else sold_out with nothing written (the caller's sold-out flag is up)."""
        call = self._call if replay_only else self._call_replicated
        reply = await call(
            self._bound.purchase,
            [
                keys.sale(sale_id), keys.held(sale_id), keys.order(sale_id, attempt.order_id),
                keys.holds(sale_id), keys.events(sale_id),
                keys.idempotency(sale_id, attempt.user_id, attempt.idempotency_key),
                keys.orders(sale_id), keys.fence(sale_id, attempt.order_id),
            ],
            [
                attempt.order_id, attempt.user_id, attempt.quantity, attempt.fingerprint,
                idempotency_ttl_ms, attempt.idempotency_key, max_backlog, sale_id,
                "1" if replay_only else "", attempt.address, "1" if attempt.queue_pass else "",
            ],
        )  # fmt: skip
        return _purchase_outcome(sale_id, attempt, reply)

    async def purchase_batch(
        self,
        sale_id: str,
        attempts: Sequence[Attempt],
        idempotency_ttl_ms: int,
        max_backlog: int,
    ) -> list[PurchaseOutcome]:
        """Several attempts on one sale in one call, decided in order."""
        per_attempt_keys = [
            key
            for a in attempts
            for key in (
                keys.order(sale_id, a.order_id),
                keys.idempotency(sale_id, a.user_id, a.idempotency_key),
                keys.fence(sale_id, a.order_id),
            )
        ]
        packed = msgspec.msgpack.encode(
            [
                [
                    a.order_id,
                    a.user_id,
                    a.quantity,
                    a.fingerprint,
                    a.idempotency_key,
                    a.address,
                    a.queue_pass,
                ]
                for a in attempts
            ]
        )
        reply = await self._call_replicated(
            self._bound.purchase_batch,
            [
                keys.sale(sale_id), keys.held(sale_id), keys.holds(sale_id),
                keys.events(sale_id), keys.orders(sale_id), *per_attempt_keys,
            ],
            [sale_id, idempotency_ttl_ms, max_backlog, packed],
        )  # fmt: skip
        return [
            _purchase_outcome(sale_id, attempt, result)
            for attempt, result in zip(attempts, reply, strict=True)
        ]

    async def confirm(self, sale_id: str, order_id: str) -> SettleOutcome:
        return await self._settle(self._bound.confirm, sale_id, order_id)

    async def cancel(self, sale_id: str, order_id: str) -> SettleOutcome:
        return await self._settle(self._bound.cancel, sale_id, order_id)

    async def _settle(self, script: _Script, sale_id: str, order_id: str) -> SettleOutcome:
        outcome, status, replayed = await self._call(
            script,
            [
                keys.sale(sale_id), keys.held(sale_id), keys.order(sale_id, order_id),
                keys.holds(sale_id), keys.events(sale_id), keys.fence(sale_id, order_id),
            ],
            [order_id, sale_id, FENCE_TTL_MS],
        )  # fmt: skip
        if outcome != "ok":
            return Rejected(Rejection(outcome))
        return Settled(status=status, replayed=bool(replayed))

    async def expire_holds(self, sale_id: str, order_ids: Sequence[str]) -> int:
        """Expires those of `order_ids` that are past their hold; returns how many."""
        released = await self._call(
            self._bound.expire_holds,
            [
                keys.sale(sale_id), keys.held(sale_id), keys.holds(sale_id),
                keys.events(sale_id), *(keys.order(sale_id, o) for o in order_ids),
            ],
            [sale_id, *order_ids],
        )  # fmt: skip
        return int(released)

    async def trim_events(self, sale_id: str) -> int:
        """Drops the sale's events the order store has acknowledged; returns how many."""
        removed = await self._call(
            self._bound.trim_events, [keys.events(sale_id)], [keys.ORDER_STORE_GROUP]
        )
        return int(removed)

    async def add_counts(
        self,
        sale_id: str,
        batch_id: str,
        attempts: int,
        rejected: int,
        shed: int,
        shed_by: Mapping[str, int] | None = None,
    ) -> bool:
        """Adds answers a process gave on its own to the sale's counters (`shed_by`: the
        shed by reason), once per batch id; False when there is no such sale."""
        reasons = [part for reason, n in (shed_by or {}).items() for part in (reason, n)]
        added = await self._call(
            self._bound.add_counts,
            [keys.sale(sale_id), keys.counted(sale_id, batch_id)],
            [attempts, rejected, shed, COUNTED_MARKER_TTL_MS, *reasons],
        )
        return bool(added)

    async def dead_letter(
        self, sale_id: str, entry_id: str, fields: dict[str, str], error: str, deliveries: int
    ) -> bool:
        """Moves a pending event to the dead letters and acknowledges it, once; False when
        it was not pending (moved already)."""
        moved = await self._call(
            self._bound.dead_letter,
            [keys.events(sale_id), keys.dead_letters(sale_id)],
            [
                keys.ORDER_STORE_GROUP, entry_id, error, deliveries,
                *(part for pair in fields.items() for part in pair),
            ],
        )  # fmt: skip
        return bool(moved)

    async def replay_dead_letter(self, sale_id: str, dead_letter_id: str) -> str | None:
        """Puts a dead-lettered event back on its stream; its new entry id, or None when
        there was no such dead letter (replayed already)."""
        entry_id = await self._call(
            self._bound.replay_dead_letter,
            [keys.dead_letters(sale_id), keys.events(sale_id), keys.sale(sale_id)],
            [dead_letter_id],
        )
        return str(entry_id) or None

    async def settle_attempt(self, sale_id: str, order_id: str) -> str | None:
        """The status of the attempt's order if it took effect; None when it did not, and
        (fenced now) never will."""
        outcome, status = await self._call(
            self._bound.settle_attempt,
            [keys.order(sale_id, order_id), keys.fence(sale_id, order_id)],
            [FENCE_TTL_MS],
        )
        return str(status) if outcome == "found" else None

    async def restore_order(self, sale_id: str, order: OrderRecord) -> tuple[str, str]:
        """Brings Redis level with the order store for one order (restore_order.lua):
        (outcome, the order's status in Redis afterwards)."""
        outcome, status = await self._call(
            self._bound.restore_order,
            [
                keys.sale(sale_id), keys.held(sale_id), keys.order(sale_id, order.order_id),
                keys.holds(sale_id), keys.events(sale_id), keys.orders(sale_id),
                keys.fence(sale_id, order.order_id),
            ],
            [
                order.order_id, order.user_id, order.quantity, order.status.value,
                order.created_at, order.expires_at, sale_id,
            ],
        )  # fmt: skip
        return str(outcome), str(status)

    async def take_stock(self, donor: str, transfer_id: str, receiver: str, units: int) -> int:
        """Takes up to `units` from bucket `donor`, owed to `receiver`; how many it took."""
        taken = await self._call(
            self._bound.take_stock,
            [keys.sale(donor), keys.transfers(donor)],
            [transfer_id, receiver, units],
        )
        return int(taken)

    async def give_stock(self, receiver: str, transfer_id: str, units: int) -> int:
        """Adds a transfer's units to bucket `receiver`, once; how many this call added."""
        given = await self._call(
            self._bound.give_stock,
            [keys.sale(receiver), keys.transfer_received(receiver, transfer_id)],
            [units, receiver, TRANSFER_MARKER_TTL_MS],
        )
        return int(given)

    async def queue_join(self, sale_id: str, user_id: str, random_key: float) -> Joined | Rejected:
        """Puts the user in the sale's waiting room (`random_key` in [0, 1) orders the
        pre-queue at the open), or finds them there."""
        outcome, status, place, joined_now = await self._call(
            self._bound.queue_join, _room_keys(sale_id), [user_id, repr(random_key)]
        )
        if outcome != "ok":
            return Rejected(Rejection(outcome))
        return Joined(str(status), int(place), bool(joined_now))

    async def queue_tick(
        self,
        sale_id: str,
        stale_after_ms: int,
        default_rate: float,
        budget: int,
        *,
        overloaded: bool = False,
    ) -> tuple[int, int]:
        """Moves the room's clock: (admitted, expired) by this call. `overloaded`: the
        caller shed work for its own sake since its last call (the engine's own pace falls)."""
        admitted, expired = await self._call(
            self._bound.queue_tick,
            [*_room_keys(sale_id), keys.held(sale_id), keys.queue_unspent(sale_id)],
            [stale_after_ms, default_rate, budget, "1" if overloaded else ""],
        )
        return int(admitted), int(expired)

    async def queue_seen(self, sale_id: str, user_ids: Sequence[str]) -> int:
        """Stamps these waiters as still polling; how many were still waiting."""
        waiting = await self._call(
            self._bound.queue_seen,
            [
                keys.queue_seen(sale_id),
                keys.queue(sale_id),
                keys.prequeue(sale_id),
                keys.queue_unspent(sale_id),
            ],
            list(user_ids),
        )
        return int(waiting)

    async def queue_state(self, sale_id: str, fields: Sequence[str]) -> list[Any]:
        """[Redis time ms, the sale hash's `fields` ("" when unset), pre-queue length,
        queue length]."""
        state: list[Any] = await self._call(
            self._bound.queue_state,
            [keys.sale(sale_id), keys.prequeue(sale_id), keys.queue(sale_id)],
            list(fields),
        )
        return state

    async def retire_sale(self, sale_id: str) -> bool:
        """Marks the sale retired if it needs no more background work; whether it is."""
        retired = await self._call(
            self._bound.retire_sale,
            [keys.sale(sale_id), keys.holds(sale_id), keys.events(sale_id)],
            [],
        )
        return bool(retired)


@dataclass(frozen=True)
class Joined:
    """queue_join.lua's answer for a room that took the user (or had them already)."""

    status: str  # "waiting" | "admitted"
    place: int  # -1 before the open
    joined_now: bool


def _refusal(outcome: str) -> Rejected | None:
    return None if outcome == "ok" else Rejected(Rejection(outcome))


def _room_keys(sale_id: str) -> list[str]:
    return [
        keys.sale(sale_id), keys.prequeue(sale_id), keys.queue(sale_id),
        keys.queue_admitted(sale_id), keys.queue_expired(sale_id), keys.queue_seen(sale_id),
    ]  # fmt: skip


def _optional(value: int | None) -> int | str:
    return "" if value is None else value


def _room_args(room: WaitingRoom) -> tuple[int | float, ...]:
    """A waiting room as create_sale.lua and patch_sale.lua take it."""
    return (
        int(room.enabled), room.admit_per_second or 0, room.token_ttl_seconds,
        room.queue_opens_seconds * 1000,
    )  # fmt: skip


def _purchase_outcome(sale_id: str, attempt: Attempt, reply: Sequence[Any]) -> PurchaseOutcome:
    """The one place a purchase script's reply becomes a value."""
    outcome, stored_order_id, created_at, expires_at, replayed, stock_left = reply
    if outcome != "ok":
        return Rejected(Rejection(outcome), replayed=bool(replayed), stock_left=int(stock_left))
    return Reservation(
        order_id=stored_order_id,
        sale_id=sale_id,
        user_id=attempt.user_id,
        quantity=attempt.quantity,
        created_at=int(created_at),
        expires_at=int(expires_at),
        replayed=bool(replayed),
        stock_left=int(stock_left),
    )
