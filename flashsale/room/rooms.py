"""The waiting rooms as one process serves them: joins go to Redis (one script), polls are
answered from what the process keeps (RoomState, refreshed a few times a second, and each
waiter's place, looked up once), and the rooms' clocks are moved by every process.

A poll costs a signature check, a few dict lookups and the rendering - no script, and no
Redis call at all except once per waiter per process (their place) and once when they reach
the front (admitted, or gone). Who is still polling reaches Redis in one call per room a
second (queue_seen.lua), which is how waiters who stop lose their place.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from flashsale import keys
from flashsale.errors import FlashsaleError, RateLimitedError
from flashsale.pause import pause
from flashsale.room.signing import Signer
from flashsale.room.state import ROOM_FIELDS, RoomState
from flashsale.settings import QueueSettings
from flashsale.store.client import queued
from flashsale.store.outcomes import Rejected
from flashsale.store.scripts import Scripts

log = logging.getLogger("flashsale.room")

Status = Literal["waiting", "admitted", "sold_out", "expired"]
# Waiters one tick looks at, at most (admitted, or found gone).
TICK_BUDGET = 1000
# A waiter who polls more often than this share of poll_after is told to slow down.
FASTEST_POLL_SHARE = 0.5
# A room no request has named for this long is no longer ticked or refreshed here.
FORGET_AFTER_SECONDS = 60.0


@dataclass(frozen=True)
class QueueAnswer:
    ticket: str
    status: Status
    position: int | None
    estimated_wait_seconds: float | None
    poll_after_seconds: float
    purchase_token: str | None = None
    token_expires_at_ms: int | None = None
    places_drawn_at_ms: int | None = None  # before the open: when the places are drawn


@dataclass
class _Place:
    """What this process knows of one waiter."""

    place: int  # -1: joined before the open (drawn at the open)
    admitted_at_ms: int | None = None
    gone: bool = False
    last_poll: float = 0.0  # loop time


class NoSuchTicketError(FlashsaleError):
    """The ticket is not one of this sale's (forged, another sale's, or never issued)."""


class Rooms:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        signer: Signer,
        settings: QueueSettings,
        overload_sheds: Callable[[], int] = lambda: 0,
    ) -> None:
        """`overload_sheds()`: requests this process shed for its own sake since it was last
        asked (the signal the rooms' own pace follows)."""
        self._overload_sheds = overload_sheds
        self._redis = redis
        self._scripts = scripts
        self.signer = signer
        self._settings = settings
        self._states: dict[str, RoomState | None] = {}
        self._named: dict[str, float] = {}  # sale -> loop time a request last named its room
        self._places: dict[str, dict[str, _Place]] = {}
        self._seen: dict[str, set[str]] = {}
        self._pace: dict[str, tuple[float, int, float]] = {}  # sale -> (loop t, admitted, /s)
        self._clock: Callable[[], float] = asyncio.get_running_loop().time

    # -- the shopper's calls ----------------------------------------------------------------

    async def join(self, sale_id: str, user_id: str) -> tuple[QueueAnswer, bool] | Rejected:
        """The user's answer after joining, and whether this call joined them (201) or they
        were in the queue already (200)."""
        joined = await self._scripts.queue_join(sale_id, user_id, secrets.SystemRandom().random())
        if isinstance(joined, Rejected):
            return joined
        self._named[sale_id] = now = self._clock()
        state = await self._state(sale_id, fresh=joined.joined_now)
        place = _Place(joined.place, last_poll=now)
        if joined.status == "admitted":
            place = await self._look_up(sale_id, user_id) or place
        self._places.setdefault(sale_id, {})[user_id] = place
        self._seen.setdefault(sale_id, set()).add(user_id)
        assert state is not None  # the script found the sale
        ticket = self.signer.ticket(sale_id, user_id)
        return self._answer(state, ticket, user_id, place, now), joined.joined_now

    async def status(self, sale_id: str, ticket: str) -> QueueAnswer:
        """Raises NoSuchTicketError for a ticket that is not this sale's, RateLimitedError
        for a waiter polling faster than told."""
        user_id = self.signer.ticket_user(sale_id, ticket)
        if user_id is None:
            raise NoSuchTicketError(ticket)
        state = await self._state(sale_id)
        if state is None or not state.enabled:
            raise NoSuchTicketError(ticket)
        self._named[sale_id] = now = self._clock()
        places = self._places.setdefault(sale_id, {})
        place = places.get(user_id)
        poll_after = self._settings.poll_after_seconds
        if place is not None and now - place.last_poll < poll_after * FASTEST_POLL_SHARE:
            raise RateLimitedError(
                "queue_poll", f"poll this queue every {poll_after:g} s, as told", poll_after
            )
        if place is None or self._may_have_moved(state, place, now):
            found = await self._look_up(sale_id, user_id)
            if found is None:
                raise NoSuchTicketError(ticket)  # never joined, or the room was reset
            place = places[user_id] = found
        place.last_poll = now
        if not place.gone:  # waiting, or admitted with a token that may not be used yet
            self._seen.setdefault(sale_id, set()).add(user_id)
        return self._answer(state, ticket, user_id, place, now)

    def token_valid(self, sale_id: str, user_id: str, token: str) -> bool:
        return self.signer.token_valid(sale_id, user_id, token, self._redis_now_ms(sale_id))

    def requires_token(self, sale_id: str) -> bool | None:
        """Whether the sale's room is on, as this process knows; None when it does not know
        (the purchase script decides, and a queue_required answer teaches it)."""
        state = self._states.get(sale_id)
        return None if state is None else state.enabled

    def learn_room_is_on(self, sale_id: str) -> None:
        self._named[sale_id] = self._clock()
        self._states.setdefault(sale_id, None)

    # -- the background work ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Ticks the rooms this process serves, refreshes what it keeps of them, and reports
        who is still polling - until `stop`."""
        settings = self._settings
        next_refresh = next_seen = 0.0
        while not stop.is_set():
            now = self._clock()
            try:
                self._forget_quiet_rooms(now)
                await self._tick()
                if now >= next_refresh:
                    next_refresh = now + settings.refresh_seconds
                    for sale_id in list(self._named):
                        await self._state(sale_id, fresh=True)
                if now >= next_seen:
                    # Often enough that nobody still polling looks gone (3 x poll_after).
                    next_seen = now + min(1.0, settings.poll_after_seconds)
                    await self._report_seen()
            except Exception:  # Redis down: the rooms wait; polls go on from what is kept
                log.warning("waiting-room upkeep failed; retrying", exc_info=True)
            await pause(settings.tick_seconds, stop)

    async def _tick(self) -> None:
        stale_ms = int(3 * self._settings.poll_after_seconds * 1000)
        overloaded = self._overload_sheds() > 0
        for sale_id, state in list(self._states.items()):
            if state is not None and state.enabled:
                await self._scripts.queue_tick(
                    sale_id, stale_ms, self._settings.default_admit_per_second, TICK_BUDGET,
                    overloaded=overloaded,
                )  # fmt: skip

    async def _report_seen(self) -> None:
        seen, self._seen = self._seen, {}
        for sale_id, users in seen.items():
            if users:
                await self._scripts.queue_seen(sale_id, sorted(users))

    def _forget_quiet_rooms(self, now: float) -> None:
        for sale_id, named_at in list(self._named.items()):
            if now - named_at > FORGET_AFTER_SECONDS:
                for table in (self._named, self._states, self._places, self._pace):
                    table.pop(sale_id, None)

    # -- what the process keeps ---------------------------------------------------------------

    async def _state(self, sale_id: str, *, fresh: bool = False) -> RoomState | None:
        if not fresh and self._states.get(sale_id) is not None:
            return self._states[sale_id]
        reply = await self._scripts.queue_state(sale_id, ROOM_FIELDS)
        now = self._clock()
        state = self._states[sale_id] = RoomState.parse(sale_id, reply, now)
        if state is not None:
            self._measure_pace(sale_id, state, now)
        return state

    def _measure_pace(self, sale_id: str, state: RoomState, now: float) -> None:
        """Admissions a second, smoothed over the last few seconds: what the ETA divides by."""
        previous = self._pace.get(sale_id)
        if previous is None or now - previous[0] < 1.0:
            if previous is None:
                self._pace[sale_id] = (now, state.admitted_total, 0.0)
            return
        then, admitted, pace = previous
        recent = (state.admitted_total - admitted) / (now - then)
        self._pace[sale_id] = (now, state.admitted_total, 0.5 * pace + 0.5 * recent)

    def _redis_now_ms(self, sale_id: str) -> int:
        state = self._states.get(sale_id)
        now = self._clock()
        if state is None:
            # No room state here: judge by this host's clock (tokens are signed by Redis's,
            # which NTP keeps in step; a token lives minutes, not milliseconds).
            return int(time.time() * 1000)
        return state.redis_now_ms(now)

    def _may_have_moved(self, state: RoomState, place: _Place, now: float) -> bool:
        """Whether Redis may know better than the kept place: the front reached it, the open
        drew it, or the waiter was away long enough to lose it."""
        if place.gone or place.admitted_at_ms is not None:
            return False
        away = now - place.last_poll > 2 * self._settings.poll_after_seconds
        drawn = place.place < 0 and state.opened
        return away or drawn or 0 <= place.place < state.serving

    async def _look_up(self, sale_id: str, user_id: str) -> _Place | None:
        pipe = self._redis.pipeline(transaction=False)
        queued(
            pipe.zscore(keys.queue(sale_id), user_id),
            pipe.hget(keys.queue_admitted(sale_id), user_id),
            pipe.sismember(keys.queue_expired(sale_id), user_id),
            pipe.zscore(keys.prequeue(sale_id), user_id),
        )
        place, admitted_at, expired, early = await pipe.execute()
        if admitted_at is not None:
            return _Place(-1, admitted_at_ms=int(admitted_at))
        if place is not None:
            return _Place(int(place))
        if early is not None:
            return _Place(-1)
        if expired:
            return _Place(-1, gone=True)
        return None

    def _answer(
        self, state: RoomState, ticket: str, user_id: str, place: _Place, now: float
    ) -> QueueAnswer:
        poll_after = self._settings.poll_after_seconds
        now_ms = state.redis_now_ms(now)

        def final(status: Status) -> QueueAnswer:
            return QueueAnswer(ticket, status, None, None, poll_after)

        if place.admitted_at_ms is not None:
            expires = place.admitted_at_ms + state.token_ttl_ms
            if now_ms >= expires:
                return final("expired")
            token = self.signer.purchase_token(state.sale_id, user_id, expires)
            return QueueAnswer(ticket, "admitted", 0, 0.0, poll_after, token, expires)
        if place.gone:
            return final("expired")
        if state.over(now_ms) or state.nothing_left_for_waiters:
            return final("sold_out")
        if place.place < 0:
            # Before the open every place is drawn at the open: all who joined are equal, and
            # the honest position is the size of the draw.
            position = state.prequeue_length
            eta = self._eta(state, position, now_ms)
            return QueueAnswer(ticket, "waiting", position, eta, poll_after,
                               places_drawn_at_ms=state.starts_at)  # fmt: skip
        position = max(1, place.place - state.serving + 1)
        return QueueAnswer(ticket, "waiting", position, self._eta(state, position, now_ms),
                           poll_after)  # fmt: skip

    def _eta(self, state: RoomState, position: int, now_ms: int) -> float | None:
        """Seconds until this position reaches the front, at the pace measured here (the
        configured pace until there is a measurement), plus the wait for the open; None when
        the pace is so slow that no float states it (infinity is no answer, and JSON has none)."""
        measured = self._pace.get(state.sale_id, (0.0, 0, 0.0))[2]
        configured = (
            state.admit_per_second or state.auto_rate or self._settings.default_admit_per_second
        )
        pace = measured if state.opened and measured > 0 else configured
        until_open = max(0.0, (state.starts_at - now_ms) / 1000)
        eta = until_open + position / pace
        return round(eta, 1) if math.isfinite(eta) else None
