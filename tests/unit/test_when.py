"""Times as operators type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flashsale.runtime.sales.when import TimeSyntaxError, duration, moment, relative, window

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_relative_and_absolute_windows() -> None:
    assert window("in 10m", "for 2h", now=NOW) == ("2026-12-07T12:10:00Z", "2026-12-07T14:10:00Z")
    assert window("now", "in 1h30m", now=NOW) == ("2026-12-07T12:00:00Z", "2026-12-07T13:30:00Z")
    assert window("2026-12-24T18:00:00Z", "for 1d", now=NOW) == (
        "2026-12-24T18:00:00Z", "2026-12-25T18:00:00Z",
    )  # fmt: skip
    assert moment("2026-12-24T19:00:00+01:00", now=NOW) == datetime(2026, 12, 24, 18, tzinfo=UTC)
    assert duration("90s") == timedelta(seconds=90)
    assert duration("1h 30m") == timedelta(minutes=90)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tomorrow", "is not a time"),
        ("in ten minutes", "is not a duration"),
        ("in 10x", "is not a duration"),
        ("in 10m5", "is not a duration"),
        ("for 2h", "for the end of a window only"),
        ("2026-12-24T18:00:00", "no time zone"),
    ],
)
def test_what_is_not_a_time_says_why(text: str, problem: str) -> None:
    with pytest.raises(TimeSyntaxError, match=problem):
        moment(text, now=NOW)


def test_relative_reads_as_a_person_says_it() -> None:
    assert relative(NOW + timedelta(minutes=10), NOW) == "in 10m"
    assert relative(NOW - timedelta(hours=2, minutes=5), NOW) == "2h5m ago"
    assert relative(NOW + timedelta(days=12), NOW) == "in 12d"
    assert relative(NOW + timedelta(seconds=42), NOW) == "in 42s"
    assert relative(NOW, NOW) == "now"
