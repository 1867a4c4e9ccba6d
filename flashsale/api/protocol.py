"""The HTTP connection below the app: when each request's head arrived, how many connections
a process holds, and how long a client may take to send a request head.

aiohttp hands a request to the app when the event loop gets to it, which under overload is
long after its bytes arrived; the app could not tell a fresh request from one that has
already waited out its shopper. `GuardedHandler` (aiohttp's per-connection protocol, extended)
stamps the moment each request head is parsed, so that admission can judge a request by its
age before it reads a byte of the body (`arrival_of`). It also:

- refuses connections past a per-process cap by closing them at once (the client sees the
  connection reset; a load balancer in front retries another process or answers 503), so
  that a flood of connections cannot take the process's memory and file descriptors;
- closes a connection whose request head does not arrive within `header_timeout` of its
  first byte (slowloris: a head trickled a byte at a time never becomes a request, so it
  never takes an in-flight slot).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

# Given a parsed head's method and raw target, the whole HTTP answer that refuses it at once,
# or None to let the app handle it (api/early.py).
EarlyRefusal = Callable[[str, str], bytes | None]


@dataclass
class ConnectionGuard:
    """Per-process connection limits, shared by every connection's handler."""

    max_connections: int
    header_timeout: float
    early_refusal: EarlyRefusal | None = None
    open: int = 0
    refused: int = 0
    refused_early: int = 0
    heads_timed_out: int = 0


class GuardedHandler(RequestHandler):
    def __init__(self, manager: Any, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._refused = False
        # Loop time each parsed, not yet handled request head arrived, oldest first.
        self.arrivals: deque[float] = deque()
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open >= guard.max_connections:
            self._refused = True
            guard.refused += 1
            cast(asyncio.Transport, transport).abort()  # closed before aiohttp sees it
            return
        guard.open += 1
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        self._guard.open -= 1
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        loop = self._loop
        now = loop.time()
        before = self._request_count
        # aiohttp wakes its request loop for new heads; hold that until they are judged.
        waiter, self._waiter = self._waiter, None
        try:
            super().data_received(data)
        finally:
            self._waiter = waiter
        heads = self._request_count - before
        if heads:
            self.arrivals.extend([now] * heads)
            self._cancel_head_deadline()
            if self._guard.early_refusal is not None:
                self._refuse_early(self._guard.early_refusal)
        elif data and self._head_deadline is None and not self._busy():
            # The first bytes of a head: the rest has header_timeout to follow.
            self._head_deadline = loop.call_at(now + self._guard.header_timeout, self._head_overdue)
        if self._messages and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _refuse_early(self, refusal: EarlyRefusal) -> None:
        """Answers the new heads the app would refuse anyway, straight on the transport: no
        Request, no middleware, no handler - the cheapest refusal short of the kernel's.
        Only while nothing else is queued or in progress on the connection (answers must go
        out in order), and only for heads whose body has fully arrived (nothing is left to
        read for them)."""
        transport = self.transport
        if self._request_in_progress or len(self._messages) != len(self.arrivals):
            return
        while self._messages and transport is not None:
            message, payload = self._messages[0]
            method, target = getattr(message, "method", None), getattr(message, "path", None)
            if method is None or target is None or not payload.is_eof():
                return
            answer = refusal(method, target)
            if answer is None:
                return
            self._messages.popleft()
            self.arrivals.popleft()
            if self._parser is not None:
                self._parser.message_consumed()
            self._guard.refused_early += 1
            transport.write(answer)
            if getattr(message, "should_close", True):
                transport.close()
                return

    def _busy(self) -> bool:
        """A request is parsed or being handled: bytes now are its body, which admission
        times (it awaits the body before the request takes a slot)."""
        return bool(self._request_in_progress or self._messages)

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self._busy():
            return
        self._guard.heads_timed_out += 1
        if self.transport is not None:
            self.transport.close()

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None


class GuardedServer(web.Server):
    """aiohttp's connection factory, making GuardedHandlers."""

    guard: ConnectionGuard

    def __call__(self) -> GuardedHandler:
        return GuardedHandler(self, guard=self.guard, loop=self._loop, **self._kwargs)


def guard_server(server: web.Server, guard: ConnectionGuard) -> web.Server:
    """Makes the server aiohttp built for an app hand out GuardedHandlers (its class is all
    that changes: aiohttp keeps building and managing it)."""
    server.__class__ = GuardedServer
    guarded = cast(GuardedServer, server)
    guarded.guard = guard
    return guarded


def arrival_of(request: web.Request) -> float | None:
    """The loop time the request's head arrived, or None when it did not come through a
    GuardedHandler (aiohttp's test server). Call once per request, before anything awaits:
    requests on one connection are handled in order, so its oldest stamp is this one's."""
    protocol = request.protocol
    if isinstance(protocol, GuardedHandler) and protocol.arrivals:
        return protocol.arrivals.popleft()
    return None
