"""Locally answered attempts reach the sale's counters: a failing sale holds back neither the
others nor its own later counts, and a retried batch keeps its id (so Redis adds it once)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from flashsale.admission.local_counts import LocalCounts


class FlakyScript:
    """Records what each call would add; refuses calls for the sales in `down`."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.calls: list[tuple[str, str, int, int, int]] = []
        self.tried_ids: list[str] = []

    async def add_counts(
        self,
        sale_id: str,
        batch_id: str,
        attempts: int,
        rejected: int,
        shed: int,
        shed_by: Mapping[str, int] | None = None,
    ) -> bool:
        self.tried_ids.append(batch_id)
        if sale_id in self.down:
            raise ConnectionError(f"{sale_id}'s Redis node is down")
        self.calls.append((sale_id, batch_id, attempts, rejected, shed))
        return True


async def test_one_failing_sale_holds_back_no_other_and_keeps_its_own() -> None:
    counts, script = LocalCounts(), FlakyScript()
    for _ in range(3):
        counts.rejected("a")
    counts.shed("b", "in_flight")
    counts.rejected("c")
    script.down = {"a"}
    with pytest.raises(ConnectionError):
        await counts.flush(script)
    assert {(sale, a, r, s) for sale, _id, a, r, s in script.calls} == {
        ("b", 1, 0, 1), ("c", 1, 1, 0),
    }  # fmt: skip

    counts.shed("a", "deadline")  # counted while the first batch waits
    script.down = set()
    script.calls.clear()
    await counts.flush(script)
    assert [(sale, a, r, s) for sale, _id, a, r, s in script.calls] == [
        ("a", 3, 3, 0), ("a", 1, 0, 1),
    ]  # fmt: skip
    assert len({batch_id for _sale, batch_id, *_ in script.calls}) == 2
    script.calls.clear()
    await counts.flush(script)
    assert script.calls == []  # everything was sent once


async def test_a_retried_batch_keeps_its_id() -> None:
    counts, script = LocalCounts(), FlakyScript()
    counts.rejected("a")
    script.down = {"a"}
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await counts.flush(script)
    script.down = set()
    await counts.flush(script)
    assert len(script.tried_ids) == 3
    assert len(set(script.tried_ids)) == 1  # the same batch, tried three times
    assert len(script.calls) == 1


async def test_shed_is_also_counted_by_reason() -> None:
    sent: list[Mapping[str, int] | None] = []

    class PositionalScript:
        async def add_counts(
            self, sale_id: str, batch_id: str, attempts: int, rejected: int, shed: int,
            shed_by: Mapping[str, int] | None = None,
        ) -> bool:  # fmt: skip
            assert (attempts, rejected, shed) == (4, 1, 3)
            sent.append(shed_by)
            return True

    counts = LocalCounts()
    counts.shed("a", "in_flight")
    counts.shed("a", "in_flight")
    counts.shed("a", "rate_limited_user")
    counts.rejected("a")
    await counts.flush(PositionalScript())
    assert sent == [{"in_flight": 2, "rate_limited_user": 1}]
