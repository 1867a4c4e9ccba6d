"""RFC 3339 UTC strings on the wire, integer milliseconds since the epoch in Redis."""

import functools
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS


def format_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return f"{_format_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    # Answers of the same second share this prefix: formatting a datetime is the slow part.
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
