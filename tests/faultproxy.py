"""A fault-injection TCP proxy between the engine and Redis, for the tests.

It understands just enough RESP to pair each command with its reply, so that a test can
delay every reply, stall them all until released, reset every connection, or — the fault that
matters most — let Redis run a chosen command and then swallow its reply and drop the
connection, as a network that fails at the worst moment does. A client that retries then
sends the same command again: the engine must make that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

Command = list[bytes]
Matcher = Callable[[Command], bool]


# RESP3 (redis-py speaks it after HELLO 3) adds these to RESP2's + - : $ *.
_SIMPLE = frozenset(b"+-:,#_(")
_SIZED = frozenset(b"$=!")
_AGGREGATES = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """One whole RESP2 or RESP3 value, as raw bytes."""
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[0], line[1:-2]
    if kind in _SIMPLE:
        return line
    if kind in _SIZED:
        size = int(rest)
        return line if size < 0 else line + await reader.readexactly(size + 2)
    if kind in _AGGREGATES:
        parts = [line]
        for _ in range(max(int(rest), 0) * _AGGREGATES[kind]):
            parts.append(await read_reply(reader))
        if kind == ord("|"):  # an attribute precedes the value it describes
            parts.append(await read_reply(reader))
        return b"".join(parts)
    raise ValueError(f"not RESP: {line!r}")


def command_of(raw: bytes) -> Command:
    """The arguments of a command sent as an array of bulk strings."""
    lines = raw.split(b"\r\n")
    return [lines[i] for i in range(2, len(lines), 2)][: int(lines[0][1:])]


@dataclass
class _Swallow:
    matches: Matcher
    remaining: int
    swallowed: list[Command] = field(default_factory=list)
    then: Callable[[], None] | None = None


class FaultProxy:
    def __init__(self, redis_host: str, redis_port: int) -> None:
        self._target = (redis_host, redis_port)
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._serving: set[asyncio.Task[None]] = set()
        self._swallows: list[_Swallow] = []
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.reply_delay = 0.0
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # End each connection's task here rather than leave it to be cancelled with the loop.
        serving = [task for task in self._serving if not task.done()]
        for task in serving:
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)

    def swallow_reply(
        self, matches: Matcher, times: int = 1, then: Callable[[], None] | None = None
    ) -> list[Command]:
        """The next `times` commands that match run in Redis, but their replies are dropped
        and their connections closed (`then` is called first, each time). Returns the list
        the swallowed commands go in."""
        rule = _Swallow(matches, times, then=then)
        self._swallows.append(rule)
        return rule.swallowed

    def refuse_connections(self) -> None:
        """New connections are refused (nothing listens); those open stay."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def accept_connections(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def stall(self) -> None:
        """Replies wait (commands still reach Redis) until `release()`."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def reset(self) -> None:
        """Every connection through the proxy is cut now."""
        for client, server in list(self._links):
            client.close()
            server.close()
        self._links.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:  # Redis is down: the client sees its connection closed
            client_w.close()
            return
        link = (client_w, server_w)
        self._links.add(link)
        in_flight: asyncio.Queue[tuple[Command, _Swallow | None]] = asyncio.Queue()
        upstream = asyncio.create_task(self._requests(client_r, server_w, in_flight))
        try:
            await self._replies(server_r, client_w, in_flight)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            # stop() ends the connection: a task of start_server's own, nobody awaits its
            # cancellation (and Python 3.11 logs a cancelled one as an error).
            pass
        finally:
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await upstream
            self._links.discard(link)
            client_w.close()
            server_w.close()

    async def _requests(
        self,
        client_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
        in_flight: asyncio.Queue[tuple[Command, _Swallow | None]],
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, OSError):
            while True:
                raw = await read_reply(client_r)  # a command is an array, like a reply
                command = command_of(raw)
                rule = next(
                    (r for r in self._swallows if r.remaining > 0 and r.matches(command)), None
                )
                if rule is not None:
                    rule.remaining -= 1
                await in_flight.put((command, rule))
                server_w.write(raw)
                await server_w.drain()
        server_w.close()

    async def _replies(
        self,
        server_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        in_flight: asyncio.Queue[tuple[Command, _Swallow | None]],
    ) -> None:
        while True:
            reply = await read_reply(server_r)
            if reply.startswith(b">"):  # RESP3 push (pub/sub): answers no command
                client_w.write(reply)
                continue
            command, rule = await in_flight.get()
            if rule is not None:
                rule.swallowed.append(command)
                if rule.then is not None:
                    rule.then()
                return  # Redis ran it; the client never hears, and the connection drops
            await self._flowing.wait()
            if self.reply_delay:
                await asyncio.sleep(self.reply_delay)
            client_w.write(reply)
            await client_w.drain()
