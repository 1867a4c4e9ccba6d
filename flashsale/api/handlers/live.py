"""GET /admin/sales/{sale_id}/live: the sale's live figures as server-sent events, one a
second (the token is checked upstream; the console reads it with fetch and a bearer header,
since EventSource cannot send one)."""

from __future__ import annotations

from aiohttp import web

from flashsale.api.context import LIVE
from flashsale.api.params import path_id
from flashsale.api.problems import ProblemCode, ProblemError

# Reconnect after 2 s when the stream drops (EventSource honours it; the console copies it).
_PREAMBLE = b"retry: 2000\n\n"


async def watch_sale(request: web.Request) -> web.StreamResponse:
    sale_id = path_id(request, "sale_id")
    async with request.app[LIVE].watch(sale_id) as feed:
        # The feed's first reading says whether the sale exists: watchers arriving together
        # share it (a read each would be hundreds of Redis calls at once).
        await feed.after(0)
        if feed.kind == "gone":
            raise ProblemError(ProblemCode.NOT_FOUND, f"no sale with id {sale_id!r}")
        if feed.kind == "unavailable" and feed.number == 1:
            raise ProblemError(
                ProblemCode.OVERLOADED, "Redis is not answering; retry shortly",
                {"Retry-After": "1"},
            )  # fmt: skip
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy in front must pass each event on at once
            }
        )
        await response.prepare(request)
        try:
            await response.write(_PREAMBLE)
            seen = 0
            while (event := await feed.after(seen)) is not None:
                seen, data = event
                await response.write(data)
        except ConnectionError:
            pass  # the watcher went away
    return response
