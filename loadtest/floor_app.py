"""The floor of the benchmark: a bare aiohttp JSON endpoint on uvloop, one process."""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    """Reads and parses a JSON body when there is one, as the purchase route does."""
    if request.can_read_body:
        await request.json()
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/", hello)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None,
                loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    main()
