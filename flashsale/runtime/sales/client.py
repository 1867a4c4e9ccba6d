"""The operator routes over HTTP, for one command at a time: finds the engine and its token,
and turns every refusal into an OperatorError that says it in one line."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flashsale.errors import FlashsaleError
from flashsale.runtime.admin_token import TOKEN_FILE
from flashsale.runtime.engine_address import running_engine_url
from flashsale.settings import Settings

TIMEOUT_SECONDS = 15.0


class OperatorError(FlashsaleError):
    """The engine refused (a problem document), or could not be asked."""

    def __init__(self, message: str, *, reached: bool) -> None:
        super().__init__(message)
        self.reached = reached  # the engine answered: the exit says "refused", not "cannot run"


@dataclass(frozen=True)
class OperatorClient:
    url: str
    token: str

    @classmethod
    def locate(cls, settings: Settings, url: str | None) -> OperatorClient:
        """`--url`, else $FLASHSALE_URL, else the `serve` running on the data dir, else the
        configured host and port; the token from FLASHSALE_ADMIN_TOKEN or the data dir."""
        found = url or os.environ.get("FLASHSALE_URL") or running_engine_url(settings.data_dir)
        if not found:
            host = settings.server.host
            found = f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}"
        return cls(found.rstrip("/"), _token(settings))

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the operator's own engine URL
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise OperatorError(_problem_line(error), reached=True) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise OperatorError(
                f"cannot reach the engine at {self.url}: {reason} "
                "(is it running? `make run`, or pass --url)",
                reached=False,
            ) from None


def _problem_line(error: urllib.error.HTTPError) -> str:
    """`404 not_found: no sale with id 'x'` from the problem document (RFC 9457)."""
    raw = error.read()
    try:
        problem = json.loads(raw)
        code, detail = problem.get("code", ""), problem.get("detail") or problem.get("title")
    except (ValueError, AttributeError):
        code, detail = "", raw.decode(errors="replace").strip()[:200]
    retry = error.headers.get("Retry-After")
    suffix = f" (retry after {retry} s)" if retry else ""
    return f"{error.code} {code or error.reason}: {detail or error.reason}{suffix}"


def _token(settings: Settings) -> str:
    if settings.admin.token:
        return settings.admin.token
    path: Path = settings.data_dir / TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        token = ""
    if not token:
        raise OperatorError(
            f"no admin token: set FLASHSALE_ADMIN_TOKEN, or run where {path} is "
            "(serve writes it there) or pass --data-dir",
            reached=False,
        )
    return token
