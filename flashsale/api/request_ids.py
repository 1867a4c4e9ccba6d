"""Request ids: unique per process (a random prefix) and cheap (a counter), not uuid4."""

from __future__ import annotations

import itertools
import os

_PREFIX = os.urandom(4).hex() + "-"
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):x}"
