"""The engine's two pages, each one file with nothing fetched but this API:
- the reference waiting page a store frontend may serve as it is, or read as the example of
  integrating the waiting room (pages/waiting-room.html);
- the operators' console (pages/console.html), which asks for the admin token itself."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from flashsale.api.params import path_id

_PAGES = Path(__file__).resolve().parent.parent / "pages"


@dataclass(frozen=True)
class _Page:
    body: bytes
    headers: dict[str, str]

    @classmethod
    def load(cls, name: str, cache_control: str) -> _Page:
        body = (_PAGES / name).read_bytes()
        # Nothing but the page's own script and style, and calls to this origin.
        policy = (
            f"default-src 'none'; connect-src 'self'; script-src {_inline_hashes(body, 'script')}; "
            f"style-src {_inline_hashes(body, 'style')}; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        )
        return cls(
            body,
            {
                "Content-Security-Policy": policy,
                "Cache-Control": cache_control,
                "Referrer-Policy": "no-referrer",
            },
        )

    def response(self) -> web.Response:
        return web.Response(
            body=self.body, content_type="text/html", charset="utf-8", headers=self.headers
        )


def _inline_hashes(page: bytes, tag: str) -> str:
    """CSP hashes of the page's own inline <tag> blocks: the only ones a browser will run."""
    blocks = re.findall(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), page, re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block).digest()).decode()}'" for block in blocks
    )


_WAITING_ROOM = _Page.load("waiting-room.html", "public, max-age=300")
_CONSOLE = _Page.load("console.html", "no-cache")


async def waiting_room_page(request: web.Request) -> web.Response:
    path_id(request, "sale_id")
    return _WAITING_ROOM.response()


async def console_page(_request: web.Request) -> web.Response:
    return _CONSOLE.response()
