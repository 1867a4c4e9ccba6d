"""Pure logic: body decoding messages, fingerprints, sale status, times, key slots."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import msgspec
import pytest
from redis.crc import key_slot

from flashsale import keys
from flashsale.api.codec import _field_message, fingerprint
from flashsale.api.schemas import PurchaseRequest
from flashsale.ids import new_order_id, sale_ref
from flashsale.records import SaleRecord, SaleStatus
from flashsale.timefmt import format_ms, to_ms


def decode_error(raw: bytes) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(raw, type=PurchaseRequest)
    return _field_message(str(caught.value))


def test_field_messages_lead_with_the_field() -> None:
    assert decode_error(b'{"user_id": "u", "quantity": 0}').startswith("quantity:")
    assert decode_error(b'{"quantity": 1}') == "user_id: missing required field"
    assert decode_error(b'{"user_id": "u", "quantity": 1, "x": 1}') == "x: unknown field"


def test_fingerprint_ignores_spelling_but_not_content() -> None:
    a = msgspec.json.decode(b'{"user_id":"u","quantity":2}', type=PurchaseRequest)
    b = msgspec.json.decode(b'{ "quantity": 2, "user_id": "u" }', type=PurchaseRequest)
    c = msgspec.json.decode(b'{"user_id":"u","quantity":3}', type=PurchaseRequest)
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


BASE = SaleRecord(
    sale_id="s", sku="k", name="n", ref="r", stock_total=10, stock_left=5,
    starts_at=1_000, ends_at=2_000, ended_at=0, paused=False, per_user_limit=1,
    hold_seconds=600, holds_per_address=None, counters={}, read_at=1_500,
)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, SaleStatus.LIVE),
        ({"read_at": 999}, SaleStatus.SCHEDULED),
        ({"read_at": 2_000}, SaleStatus.ENDED),
        ({"ended_at": 1_200}, SaleStatus.ENDED),
        ({"paused": True}, SaleStatus.PAUSED),
        ({"paused": True, "read_at": 999}, SaleStatus.PAUSED),
        ({"stock_left": 0}, SaleStatus.SOLD_OUT),
        ({"stock_left": 0, "read_at": 2_500}, SaleStatus.ENDED),
    ],
)
def test_sale_status_is_derived(changes: dict[str, object], status: SaleStatus) -> None:
    assert replace(BASE, **changes).status is status  # type: ignore[arg-type]


def test_times_round_trip_in_milliseconds() -> None:
    moment = datetime(2026, 11, 29, 17, 0, 0, 123_000, tzinfo=UTC)
    assert format_ms(to_ms(moment)) == "2026-11-29T17:00:00.123Z"
    assert to_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0


def test_every_key_of_a_sale_shares_one_hash_slot() -> None:
    sale = "sale:with.odd-chars_1"
    names = [
        keys.sale(sale), keys.held(sale), keys.order(sale, "o-1"), keys.holds(sale),
        keys.events(sale), keys.idempotency(sale, "user:1", "key {with} braces"),
        keys.orders(sale), keys.dead_letters(sale),
    ]  # fmt: skip
    assert len({key_slot(name.encode()) for name in names}) == 1


def test_idempotency_keys_of_different_users_never_collide() -> None:
    assert keys.idempotency("s", "a:b", "c") != keys.idempotency("s", "a", "b:c")


def test_order_ids_are_identifiers_that_name_their_sale() -> None:
    order_id = new_order_id("x" * 64)
    assert len(order_id) <= 64
    assert order_id.split("-")[0] == sale_ref("x" * 64)
    assert new_order_id("s") != new_order_id("s")
    assert len(order_id.split("-")[1]) == 20  # 80 random bits: unguessable
