"""Times as operators type them: RFC 3339 ("2026-12-24T18:00:00Z"), "now", "in 10m"
(from now) and, for the end of a window, "for 2h" (from its start). Durations are one or
more of <number><unit>, unit s, m, h or d: "90s", "1h30m", "2d"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class TimeSyntaxError(ValueError):
    pass


def duration(text: str) -> timedelta:
    compact = text.replace(" ", "").lower()
    parts = _PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise TimeSyntaxError(f"{text!r} is not a duration (say 90s, 10m, 1h30m or 2d)")
    return sum((timedelta(**{_UNITS[unit]: float(n)}) for n, unit in parts), timedelta())


def moment(text: str, *, now: datetime, start: datetime | None = None) -> datetime:
    """The moment `text` names; `start` is what "for ..." counts from (an end's start)."""
    cleaned = text.strip()
    lowered = cleaned.lower()
    if lowered == "now":
        return now
    if lowered.startswith("in "):
        return now + duration(cleaned[3:])
    if lowered.startswith("for "):
        if start is None:
            raise TimeSyntaxError(f"{text!r}: 'for ...' is for the end of a window only")
        return start + duration(cleaned[4:])
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeSyntaxError(
            f"{text!r} is not a time (say 2026-12-24T18:00:00Z, now, in 10m or for 2h)"
        ) from None
    if parsed.tzinfo is None:
        raise TimeSyntaxError(f"{text!r} has no time zone: add Z for UTC")
    return parsed.astimezone(UTC)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def window(starts: str, ends: str, *, now: datetime) -> tuple[str, str]:
    """A sale's starts_at and ends_at as the API takes them."""
    start = moment(starts, now=now)
    return rfc3339(start), rfc3339(moment(ends, now=now, start=start))


def relative(at: datetime, now: datetime) -> str:
    """How far a moment is from now, as a person reads it: "in 10m", "2h ago", "now"."""
    seconds = round((at - now).total_seconds())
    if abs(seconds) < 1:
        return "now"
    text = _short(abs(seconds))
    return f"in {text}" if seconds > 0 else f"{text} ago"


def _short(seconds: int) -> str:
    for size, unit, smaller in ((86400, "d", 3600), (3600, "h", 60), (60, "m", 1)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            minor = rest // smaller
            next_unit = {"d": "h", "h": "m", "m": "s"}[unit]
            return f"{whole}{unit}{minor}{next_unit}" if minor and whole < 10 else f"{whole}{unit}"
    return f"{seconds}s"
