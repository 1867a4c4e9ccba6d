"""Reads a server-sent event stream (text/event-stream) from an aiohttp response, as a
browser's EventSource would: events are blank-line separated blocks of `field: value`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Event:
    name: str
    data: str
    event_id: str | None
    received_at: float  # event-loop time it arrived

    def json(self) -> Any:
        return json.loads(self.data)


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    loop = asyncio.get_running_loop()
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            yield Event(fields.get("event", "message"), fields["data"], fields.get("id"),
                        loop.time())  # fmt: skip
        fields = {}
