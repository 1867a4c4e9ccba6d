"""The reference waiting page a store frontend may serve as it is, or read as the example of
integrating the waiting room (flashsale/api/pages/waiting-room.html: one file, no framework,
nothing fetched but this API)."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from aiohttp import web

from flashsale.api.params import path_id

_PAGE = (Path(__file__).resolve().parent.parent / "pages" / "waiting-room.html").read_bytes()


def _inline_hashes(tag: str) -> str:
    """CSP hashes of the page's own inline <tag> blocks: the only ones a browser will run."""
    blocks = re.findall(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), _PAGE, re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block).digest()).decode()}'" for block in blocks
    )


# Nothing but the page's own script and style, and calls to this origin.
_POLICY = (
    f"default-src 'none'; connect-src 'self'; script-src {_inline_hashes('script')}; "
    f"style-src {_inline_hashes('style')}; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


async def waiting_room_page(request: web.Request) -> web.Response:
    path_id(request, "sale_id")
    return web.Response(
        body=_PAGE,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": _POLICY, "Cache-Control": "public, max-age=300"},
    )
