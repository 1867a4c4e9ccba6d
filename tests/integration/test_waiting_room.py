"""The waiting room through HTTP and its scripts, against the real Redis (API.md, issue 11):
joining, the shuffled open, admission at the room's pace, purchase tokens, and who is told
what."""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from flashsale import keys
from flashsale.records import SaleChange
from flashsale.settings import Settings
from flashsale.store.outcomes import Rejected
from flashsale.store.sales import SaleStore
from flashsale.store.scripts import Joined, Scripts
from tests.helpers import ADMIN, from_now, sale_body
from tests.integration.conftest import room_app
from tests.integration.test_purchase_script import new_sale
from tests.polling import eventually

Client = TestClient[Any, Any]
MSGPACK = "application/msgpack"
POLL_AFTER = 0.2  # seconds; the room's clock ticks every 0.02 s here


@pytest.fixture
async def room_client(settings: Settings) -> AsyncIterator[Client]:
    async with room_app(settings, POLL_AFTER, tick=0.02) as client:
        yield client


async def upcoming(client: Client) -> dict[str, Any]:
    """A sale with its room on that opens in ten minutes (its queue is open already)."""
    return await create(
        client, starts_at=from_now(minutes=10), ends_at=from_now(hours=2), waiting_room=room()
    )


def room(**overrides: Any) -> dict[str, Any]:
    return {"enabled": True, "admit_per_second": 50, **overrides}


async def create(client: Client, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/admin/sales", json=sale_body(**overrides), headers=ADMIN)
    assert response.status == 201, await response.text()
    sale: dict[str, Any] = await response.json()
    return sale


async def join(client: Client, sale_id: str, user: str) -> Any:
    return await client.post(f"/v1/sales/{sale_id}/queue", json={"user_id": user})


async def poll(client: Client, sale_id: str, ticket: str) -> Any:
    return await client.get(f"/v1/sales/{sale_id}/queue/{ticket}")


async def buy(client: Client, sale_id: str, user: str, token: str | None = None) -> Any:
    headers = {"Purchase-Token": token} if token is not None else {}
    return await client.post(
        f"/v1/sales/{sale_id}/purchases", json={"user_id": user, "quantity": 1}, headers=headers
    )


async def problem_code(response: Any) -> str:
    assert response.content_type == "application/problem+json"
    return str((await response.json(content_type=None))["code"])


async def wait_for_status(client: Client, sale_id: str, ticket: str, wanted: str) -> Any:
    """Polls as a waiter does (every poll_after) until the status is `wanted`."""

    async def check() -> Any:
        answer = await poll(client, sale_id, ticket)
        if answer.status == 429:
            return None  # the first poll right after joining is sooner than told
        assert answer.status == 200, await answer.text()
        body = await answer.json()
        return body if body["status"] == wanted else None

    return await eventually(check, within=10, what=f"status {wanted}", interval=POLL_AFTER)


async def test_joining_before_the_open_and_again(room_client: Client) -> None:
    client = room_client
    sale = await upcoming(client)
    assert sale["waiting_room"]["enabled"] is True
    assert sale["queue"] == {"waiting": 0, "admitted": 0}
    sale_id = sale["sale_id"]
    first = await join(client, sale_id, "ann")
    assert first.status == 201
    joined = await first.json()
    assert joined["status"] == "waiting"
    assert joined["poll_after_seconds"] == POLL_AFTER
    assert joined["position"] == 1  # before the open: the size of the draw
    assert joined["estimated_wait_seconds"] > 500  # the open is ten minutes away
    assert first.headers["Location"] == f"/v1/sales/{sale_id}/queue/{joined['ticket']}"
    again = await join(client, sale_id, "ann")
    assert again.status == 200
    assert (await again.json())["ticket"] == joined["ticket"]
    assert (await (await join(client, sale_id, "bob")).json())["position"] == 2
    view = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    assert view["queue"] == {"waiting": 2, "admitted": 0}
    plain = await create(client)
    admin_view = await (await client.get(f"/admin/sales/{plain['sale_id']}", headers=ADMIN)).json()
    assert "queue" not in admin_view  # only while a room is on


async def test_admitted_shoppers_buy_with_their_token_and_only_with_it(
    room_client: Client,
) -> None:
    client = room_client
    sale_id = (await create(client, stock=5, waiting_room=room()))["sale_id"]
    other_id = (await create(client, stock=5, waiting_room=room()))["sale_id"]
    # Refused before anything: no token at all, then a forged one.
    assert await problem_code(await buy(client, sale_id, "ann")) == "queue_required"
    forged = await buy(client, sale_id, "ann", "99999999999999.AAAAAAAAAAAAAAAAAAAAAA")
    assert forged.status == 403
    assert await problem_code(forged) == "queue_required"
    malformed = await buy(client, sale_id, "ann", "x" * 65)
    assert malformed.status == 400
    assert await problem_code(malformed) == "invalid_request"

    ticket = (await (await join(client, sale_id, "ann")).json())["ticket"]
    admitted = await wait_for_status(client, sale_id, ticket, "admitted")
    token = admitted["purchase_token"]
    assert admitted["token_expires_at"].endswith("Z")
    # Not for another user, nor for another sale.
    assert (await buy(client, sale_id, "bob", token)).status == 403
    assert (await buy(client, other_id, "ann", token)).status == 403
    bought = await buy(client, sale_id, "ann", token)
    assert bought.status == 201, await bought.text()
    view = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    assert view["stock_left"] == 4  # only the purchase with the right token took stock
    assert view["queue"]["admitted"] == 1


async def test_a_token_expires(room_client: Client) -> None:
    client = room_client
    sale_id = (await create(client, waiting_room=room(token_ttl_seconds=1)))["sale_id"]
    ticket = (await (await join(client, sale_id, "ann")).json())["ticket"]
    token = (await wait_for_status(client, sale_id, ticket, "admitted"))["purchase_token"]
    expired = await wait_for_status(client, sale_id, ticket, "expired")
    assert "purchase_token" not in expired
    assert await problem_code(await buy(client, sale_id, "ann", token)) == "queue_required"


async def test_unknown_forged_and_foreign_tickets_are_404(room_client: Client) -> None:
    client = room_client
    sale_id = (await create(client, waiting_room=room()))["sale_id"]
    other_id = (await create(client, waiting_room=room()))["sale_id"]
    ticket = (await (await join(client, sale_id, "ann")).json())["ticket"]
    user, _, mac = ticket.rpartition(".")
    for bad in (
        f"bob.{mac}",  # another user's name on ann's signature
        f"{user}.{'A' * 22}",  # a made-up signature
        "not-a-ticket",
        ticket + "x",
    ):
        answer = await poll(client, sale_id, bad)
        assert answer.status == 404, bad
        assert await problem_code(answer) == "not_found"
    assert (await poll(client, other_id, ticket)).status == 404  # another sale's


async def test_a_sale_without_a_room_and_a_room_not_open_yet(room_client: Client) -> None:
    client = room_client
    plain = (await create(client))["sale_id"]
    assert await problem_code(await join(client, plain, "ann")) == "not_found"
    assert (await buy(client, plain, "ann")).status == 201  # no token needed
    later = await create(
        client, starts_at=from_now(hours=2), ends_at=from_now(hours=3),
        waiting_room=room(queue_opens_seconds=60),
    )  # fmt: skip
    refused = await join(client, later["sale_id"], "ann")
    assert refused.status == 409
    assert await problem_code(refused) == "sale_not_started"


async def test_bad_room_settings_are_400_and_change_nothing(room_client: Client) -> None:
    client = room_client
    for bad in (
        {"enabled": "yes"},
        {"enabled": True, "admit_per_second": 0},
        {"enabled": True, "token_ttl_seconds": 0},
        {"enabled": True, "surprise": 1},
    ):
        body = sale_body(waiting_room=bad)
        answer = await client.post("/admin/sales", json=body, headers=ADMIN)
        assert answer.status == 400, bad
        assert "waiting_room" in (await answer.json(content_type=None))["detail"]
        assert (await client.get(f"/admin/sales/{body['sale_id']}", headers=ADMIN)).status == 404


async def test_polling_faster_than_told_is_429(room_client: Client) -> None:
    client = room_client
    sale_id = (await upcoming(client))["sale_id"]
    ticket = (await (await join(client, sale_id, "ann")).json())["ticket"]
    too_soon = await poll(client, sale_id, ticket)
    assert too_soon.status == 429
    assert int(too_soon.headers["Retry-After"]) >= 1


async def test_waiters_are_told_sold_out_once_nothing_can_come_back(
    room_client: Client,
) -> None:
    client = room_client
    sale_id = (await create(client, stock=1, waiting_room=room(admit_per_second=1)))["sale_id"]
    tickets = {
        user: (await (await join(client, sale_id, user)).json())["ticket"]
        for user in ("ann", "bob", "cat")
    }
    told: dict[str, dict[str, Any]] = {}

    async def everyone_polls() -> dict[str, dict[str, Any]]:
        for user, ticket in tickets.items():
            answer = await poll(client, sale_id, ticket)
            if answer.status == 200:
                told[user] = await answer.json()
        return told

    async def first_admitted() -> str:
        await everyone_polls()
        return next((u for u, t in told.items() if t["status"] == "admitted"), "")

    buyer = await eventually(first_admitted, within=10, what="an admission",
                             interval=POLL_AFTER)  # fmt: skip
    order = await (await buy(client, sale_id, buyer, told[buyer]["purchase_token"])).json()
    others = [user for user in tickets if user != buyer]

    # The last unit is held: it may come back, so the others keep waiting (nobody else is
    # admitted to a sale with nothing to sell) ...
    async def others_waiting() -> bool:
        await everyone_polls()
        return all(told[u]["status"] == "waiting" for u in others)

    await eventually(others_waiting, within=5, what="the others waiting", interval=POLL_AFTER)
    # ... until it is paid for: then nothing can come back to them.
    assert (await client.post(f"/v1/orders/{order['order_id']}/confirm")).status == 200

    async def others_sold_out() -> bool:
        await everyone_polls()
        return all(told[u]["status"] == "sold_out" for u in others)

    await eventually(others_sold_out, within=5, what="sold_out for the others",
                     interval=POLL_AFTER)  # fmt: skip


async def test_a_waiter_who_stops_polling_loses_the_place(room_client: Client) -> None:
    client = room_client
    sale_id = (await upcoming(client))["sale_id"]
    leaver = (await (await join(client, sale_id, "leaver")).json())["ticket"]
    stayer = (await (await join(client, sale_id, "stayer")).json())["ticket"]

    async def leaver_gone() -> bool:
        # Only the stayer polls; the leaver's place goes after 3 x poll_after.
        await poll(client, sale_id, stayer)
        view = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
        return bool(view["queue"]["waiting"] == 1)

    await eventually(leaver_gone, within=10, what="the leaver to lose the place",
                     interval=POLL_AFTER)  # fmt: skip
    assert (await (await poll(client, sale_id, leaver)).json())["status"] == "expired"
    # Joining again puts them at the back, with the same ticket.
    back = await join(client, sale_id, "leaver")
    assert back.status == 201
    assert (await back.json())["ticket"] == leaver


# -- the open, through the scripts --------------------------------------------------------


async def open_now(store: SaleStore, sale_id: str) -> None:
    """Moves the start to a minute ago (the operator's PATCH): the next join or tick opens
    the room."""
    sale = await store.get_sale(sale_id)
    assert sale is not None
    await store.patch_sale(sale_id, SaleChange(starts_at=sale.read_at - 60_000))


async def order_of_service(redis: Redis, sale_id: str) -> list[str]:
    return [str(user) for user in await redis.zrange(keys.queue(sale_id), 0, -1)]


async def test_the_open_shuffles_the_early_uniformly_and_later_ones_queue_fifo(
    store: SaleStore, redis: Redis
) -> None:
    scripts = Scripts.register(redis)
    users = ("a", "b", "c", "d")
    trials = 240
    orders: Counter[tuple[str, ...]] = Counter()
    draw = secrets.SystemRandom()
    for trial in range(trials):
        sale = await new_sale(
            store, starts_at=from_now(minutes=10), ends_at=from_now(hours=2),
            waiting_room={"enabled": True, "admit_per_second": 1},
        )  # fmt: skip
        for user in users:  # always in the same order: arriving early earns nothing
            joined = await scripts.queue_join(sale.sale_id, user, draw.random())
            assert isinstance(joined, Joined), (trial, joined)
            assert joined.place == -1
        await open_now(store, sale.sale_id)
        late = await scripts.queue_join(sale.sale_id, f"late-{trial}", draw.random())
        assert isinstance(late, Joined)
        assert late.place == len(users)  # behind everyone who came before the open
        served = await order_of_service(redis, sale.sale_id)
        assert served[-1] == f"late-{trial}"
        orders[tuple(served[:-1])] += 1
    # Every one of the 24 orders is equally likely: chi-square with 23 degrees of freedom
    # stays under 49.7 with probability 0.999 for a fair draw.
    expected = trials / math.factorial(len(users))
    chi_square = sum((orders[p] - expected) ** 2 / expected for p in itertools.permutations(users))
    assert chi_square < 49.7, orders
    # And the one who joined first is first no more often than a quarter of the time.
    first = Counter(order[0] for order in orders.elements())
    assert max(first.values()) < trials / 4 + 4 * math.sqrt(trials * 3 / 16)


async def test_the_estimated_wait_is_what_happens(room_client: Client) -> None:
    """Twenty shoppers join an open room admitting 5 a second, one after another: each one's
    first estimate is compared with when they were actually admitted."""
    client = room_client
    sale_id = (await create(client, stock=100, waiting_room=room(admit_per_second=5)))["sale_id"]
    loop = asyncio.get_running_loop()
    joined: dict[str, tuple[str, float, float]] = {}  # user -> (ticket, at, estimated wait)
    for i in range(20):  # positions 1 to 20, in arrival order
        answer = await (await join(client, sale_id, f"eta-{i:02d}")).json()
        joined[f"eta-{i:02d}"] = (answer["ticket"], loop.time(), answer["estimated_wait_seconds"])

    async def waited(ticket: str, since: float) -> float:
        await wait_for_status(client, sale_id, ticket, "admitted")
        return loop.time() - since

    actual = await asyncio.gather(*(waited(t, at) for t, at, _ in joined.values()))
    for (user, (_, _, estimate)), wait in zip(joined.items(), actual, strict=True):
        # Within a second (the polling interval and the tick) and a third of the estimate.
        assert abs(wait - estimate) <= 1.0 + estimate / 3, (user, estimate, wait)


async def test_a_wait_too_long_to_state_is_null_in_json_and_msgpack(room_client: Client) -> None:
    """A room admitting the smallest positive pace puts the front beyond any float: the
    estimate is then unknown (null), not infinity, which msgpack would carry and JSON can't."""
    client = room_client
    sale = await create(client, waiting_room=room(admit_per_second=5e-324))
    sale_id = sale["sale_id"]
    as_json = await (await join(client, sale_id, "json-waiter")).json()
    answer = await client.post(
        f"/v1/sales/{sale_id}/queue",
        data=msgspec.msgpack.encode({"user_id": "msgpack-waiter"}),
        headers={"Content-Type": MSGPACK, "Accept": MSGPACK},
    )
    assert answer.status == 201
    as_msgpack = msgspec.msgpack.decode(await answer.read())
    assert (as_json["status"], as_msgpack["status"]) == ("waiting", "waiting")
    assert (as_json["estimated_wait_seconds"], as_msgpack["estimated_wait_seconds"]) == (None, None)

    async def polled() -> Any:
        answer = await client.get(f"/v1/sales/{sale_id}/queue/{as_msgpack['ticket']}",
                                  headers={"Accept": MSGPACK})  # fmt: skip
        if answer.status == 429:
            return None  # sooner than poll_after
        assert answer.status == 200
        return msgspec.msgpack.decode(await answer.read())

    later = await eventually(polled, within=10, what="a poll answered", interval=POLL_AFTER)
    assert (later["status"], later["estimated_wait_seconds"]) == ("waiting", None)


async def test_the_engines_own_pace_grows_while_nothing_is_shed_and_falls_when_it_is(
    store: SaleStore, redis: Redis
) -> None:
    """A room with admit_per_second null follows the engine: faster while shoppers wait and
    nothing is shed, 30% slower (once a second at most) when a process sheds."""
    scripts = Scripts.register(redis)
    sale = await new_sale(store, stock=1_000_000, waiting_room={"enabled": True})
    for i in range(2_000):  # enough that someone always waits
        assert isinstance(await scripts.queue_join(sale.sale_id, f"w{i}", 0.5), Joined)

    async def pace() -> float:
        return float(await redis.hget(keys.sale(sale.sale_id), "wr_auto_rate") or 0)

    async def tick(*, overloaded: bool = False) -> None:
        await scripts.queue_tick(sale.sale_id, 60_000, 50, 1_000, overloaded=overloaded)

    await tick()
    start = await pace()
    assert start >= 50  # it starts at 50 and has grown since the open (the joins took time)

    async def grown() -> bool:
        await tick()
        return await pace() > start * 1.15

    await eventually(grown, within=5, what="the pace to grow", interval=0.05)
    before = await pace()
    await tick(overloaded=True)
    cut = await pace()
    assert cut == pytest.approx(before * 0.7, rel=0.05)
    await tick(overloaded=True)  # a second signal within the second cuts nothing more
    assert await pace() >= cut * 0.99


async def test_no_more_are_admitted_than_there_are_units_and_a_unit_back_admits_the_next(
    store: SaleStore, redis: Redis
) -> None:
    scripts = Scripts.register(redis)
    sale = await new_sale(store, stock=2, waiting_room={
        "enabled": True, "admit_per_second": 1000, "token_ttl_seconds": 3,
    })  # fmt: skip
    sale_id = sale.sale_id
    for user in ("u1", "u2", "u3", "u4", "u5"):
        await scripts.queue_join(sale_id, user, 0.5)

    async def admitted() -> list[str]:
        await scripts.queue_tick(sale_id, 60_000, 50, 1_000)
        return sorted(str(u) for u in await redis.hkeys(keys.queue_admitted(sale_id)))

    async def two() -> bool:
        return len(await admitted()) >= 2

    await eventually(two, within=5, what="the first admissions")
    for _ in range(5):  # the pace would admit all five within 5 ms; the two units admit two
        assert await admitted() == ["u1", "u2"]
    # u1 buys: its token is spent, its unit held - still nothing free for u3.
    attempt = store.attempt(sale_id, "u1", 1, queue_pass=True)
    bought = await store.submit(sale_id, attempt)
    assert bought.__class__.__name__ == "Reservation", bought
    assert await admitted() == ["u1", "u2"]
    # u1 gives the unit back: u3 is admitted for it.
    assert not isinstance(await store.cancel(attempt.order_id), Rejected)

    async def three() -> bool:
        return "u3" in await admitted()

    await eventually(three, within=5, what="u3 to be admitted for the unit back")
    assert await admitted() == ["u1", "u2", "u3"]

    # u2 never buys: once its token expires (3 s), its unit is free for u4.
    async def four() -> bool:
        return "u4" in await admitted()

    await eventually(four, within=10, what="u2 token to lapse and u4 to be admitted")
    # Never more unused tokens than units left.
    assert await redis.zcard(keys.queue_unspent(sale_id)) <= 2


async def test_a_bad_join_is_400_and_an_unknown_sale_404(room_client: Client) -> None:
    client = room_client
    sale_id = (await create(client, waiting_room=room()))["sale_id"]
    for body, field in (({"user_id": "no spaces"}, "user_id"), ({}, "user_id"),
                        ({"user_id": "ann", "extra": 1}, "extra")):  # fmt: skip
        answer = await client.post(f"/v1/sales/{sale_id}/queue", json=body)
        assert answer.status == 400, body
        assert field in (await answer.json(content_type=None))["detail"]
    view = await (await client.get(f"/admin/sales/{sale_id}", headers=ADMIN)).json()
    assert view["queue"] == {"waiting": 0, "admitted": 0}  # nothing joined
    assert await problem_code(await join(client, "no-such-sale", "ann")) == "not_found"
