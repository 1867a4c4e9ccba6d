"""A blocking JSON HTTP client for tests that drive a service process step by step."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.polling import eventually_blocking


def request(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """Returns (status, decoded JSON body or None); connection failures count as status 0."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return request("GET", url, None, headers)


def post(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return request("POST", url, body, headers)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def until_available(call: Callable[[], tuple[int, Any]], within: float = 10.0) -> tuple[int, Any]:
    """Repeats `call` while the service answers 503 or cannot be reached: after an outage each
    process's circuit breaker probes on its own, so one may still refuse for a moment."""
    answers: list[tuple[int, Any]] = []

    def answered() -> bool:
        answers.append(call())
        return answers[-1][0] not in (0, 503)

    with contextlib.suppress(TimeoutError):  # the caller asserts on the last answer
        eventually_blocking(answered, within=within, what="an answer", interval=0.05)
    return answers[-1]
