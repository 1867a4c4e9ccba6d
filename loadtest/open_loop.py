"""An open-loop load generator for the overload benchmark: arrivals at a fixed rate, whatever
the answers do.

    python loadtest/open_loop.py URL --rate 20000 --seconds 10 [--closed 640]

Why a generator of our own: the scenario needs requests that keep arriving while the engine
queues, as shoppers do, from one core (the engine has the other). The maintained ones we
tried cannot offer that here: wrk and hey are closed-loop (each connection or worker waits for
its answer, so a slow engine slows its own load down); wrk2 and vegeta are not in Debian or
PyPI; k6's constant-arrival-rate executor is open-loop but peaked at ~4.9k requests/s on one
core of this machine against the bare aiohttp floor, about a tenth of what 10x needs
(docs/performance.md). This one does one thing: raw HTTP/1.1 on uvloop, pre-built requests,
a connection per request in flight (an idle one when there is one, else a new one - as
vegeta does), and the figures the benchmark prints.

`--closed N` turns it into the retry storm instead: N connections, each sending its next
attempt the moment an answer arrives, refusals included.

Latency runs from the moment a request is written to its answer's last byte. The generator's
own lag (written later than scheduled, when its core is saturated) is printed beside it, and
the offered rate printed is what was sent (or refused a connection), never what was asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import cast
from urllib.parse import urlsplit

import uvloop

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
ADMITTED = frozenset({201, 409})  # the engine worked on it: a hold, or sold out / a limit
REFUSED = frozenset({429, 503})  # refused before work


@dataclass
class Tally:
    """What happened to every request written."""

    written: int = 0
    lag: list[float] = field(default_factory=list)  # seconds written after scheduled
    answered: list[tuple[int, float, float]] = field(default_factory=list)  # status, sent, took
    not_connected: int = 0  # arrivals refused a connection (refused, reset, timed out)
    cut_off: int = 0  # written, then the connection closed or reset before the answer
    unanswered: int = 0  # still waiting when the run ended
    generator_full: int = 0  # arrivals not written: the generator was at its connection cap


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection with at most one request in flight."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.sent_at = 0.0
        self.waiting = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.waiting = True
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[: end + 2]
        length = _CONTENT_LENGTH.search(head)
        total = end + 4 + (int(length.group(1)) if length else 0)
        if len(self.buffer) < total:
            return
        self.buffer = self.buffer[total:]
        self.waiting = False
        self.closing = _CLOSE.search(head) is not None
        self.pool.answered(self, int(head[9:12]), time.perf_counter() - self.sent_at)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)


class Pool:
    def __init__(self, host: str, port: int, max_connections: int, tally: Tally) -> None:
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.tally = tally
        self.idle: deque[Connection] = deque()
        self.open = 0
        self.in_flight: set[Connection] = set()
        self.on_answer = asyncio.Event()  # set on every answer or lost connection

    def answered(self, connection: Connection, status: int, took: float) -> None:
        self.in_flight.discard(connection)
        self.tally.answered.append((status, connection.sent_at, took))
        if connection.closing:
            assert connection.transport is not None
            connection.transport.close()
        else:
            self.idle.append(connection)
        self.on_answer.set()

    def lost(self, connection: Connection) -> None:
        self.open -= 1
        if connection.waiting:
            self.tally.cut_off += 1
            self.in_flight.discard(connection)
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)
        self.on_answer.set()

    def fire(self, request: bytes, scheduled: float) -> None:
        """One arrival: on an idle connection, else on a new one."""
        while self.idle:
            connection = self.idle.popleft()
            if connection.transport is not None and not connection.transport.is_closing():
                self._send(connection, request, scheduled)
                return
        if self.open >= self.max_connections:
            self.tally.generator_full += 1
            return
        self.open += 1
        task = asyncio.get_running_loop().create_task(self._connect_and_send(request, scheduled))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def preconnect(self, count: int) -> None:
        """Opens `count` idle connections before the clock starts, a few at a time: a
        burst of hundreds of connects at once overflows the server's accept queue, and the
        kernel then holds some of them back for seconds of SYN-ACK retransmission (measured:
        docs/performance.md) - a cost of the benchmark's start, not of the load."""
        loop = asyncio.get_running_loop()
        for first in range(0, count, 32):
            batch = min(32, count - first)
            made = await asyncio.gather(
                *(loop.create_connection(lambda: Connection(self), self.host, self.port)
                  for _ in range(batch))
            )  # fmt: skip
            self.open += batch
            self.idle.extend(connection for _, connection in made)

    async def _connect_and_send(self, request: bytes, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: Connection(self), self.host, self.port), 5
            )
        except (OSError, TimeoutError):
            self.open -= 1
            self.tally.not_connected += 1
            return
        self._send(connection, request, scheduled)

    def _send(self, connection: Connection, request: bytes, scheduled: float) -> None:
        transport = connection.transport
        if transport is None or transport.is_closing():
            # Closed by the server between connect and now (past its connection cap).
            self.tally.not_connected += 1
            return
        self.tally.written += 1
        self.tally.lag.append(time.perf_counter() - scheduled)
        self.in_flight.add(connection)
        connection.send(request)


_background: set[asyncio.Task[None]] = set()


def requests(url: str) -> tuple[str, int, bytes, bytes]:
    """Host, port and the two halves of a purchase request around a 10-digit user number
    (fixed width: one Content-Length for all)."""
    parts = urlsplit(url)
    body_length = len(b'{"user_id":"open-0000000000","quantity":1}')
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {body_length}\r\n\r\n"
        '{"user_id":"open-'
    ).encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head, b'","quantity":1}'


async def open_loop(
    url: str, rate: float, seconds: float, max_connections: int, ready: int
) -> Tally:
    """`ready` connections are open before the first arrival, as a load balancer's pool
    to its upstream would be; more are opened while every one has an answer outstanding."""
    host, port, head, tail = requests(url)
    tally = Tally()
    pool = Pool(host, port, max_connections, tally)
    await pool.preconnect(min(ready, max_connections))
    start = time.perf_counter()
    total = int(rate * seconds)
    scheduled = 0
    while scheduled < total:
        due = min(total, int((time.perf_counter() - start) * rate))
        while scheduled < due:
            scheduled += 1
            pool.fire(b"%s%010d%s" % (head, scheduled, tail), start + scheduled / rate)
        await asyncio.sleep(0.001)  # the pace; each wake-up sends all that came due
    await _drain(pool, grace=11.0)
    return tally


async def closed_loop(url: str, connections: int, seconds: float) -> Tally:
    host, port, head, tail = requests(url)
    tally = Tally()
    pool = Pool(host, port, connections, tally)
    await pool.preconnect(connections)
    stop_at = time.perf_counter() + seconds
    sent = 0
    while time.perf_counter() < stop_at:
        # Every free connection (answered, or lost and not yet replaced) sends at once.
        while (pool.idle or pool.open < connections) and time.perf_counter() < stop_at:
            sent += 1
            pool.fire(b"%s%010d%s" % (head, sent, tail), time.perf_counter())
        pool.on_answer.clear()
        try:
            await asyncio.wait_for(pool.on_answer.wait(), stop_at - time.perf_counter())
        except TimeoutError:
            break
    await _drain(pool, grace=11.0)
    return tally


async def _drain(pool: Pool, grace: float) -> None:
    """Waits (polling, with a deadline) for the answers still due, then closes everything."""
    deadline = time.perf_counter() + grace
    while (pool.in_flight or _background) and time.perf_counter() < deadline:
        pool.on_answer.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.on_answer.wait(), 0.1)  # connects may still end
    pool.tally.unanswered = len(pool.in_flight)
    for connection in [*pool.in_flight, *pool.idle]:
        connection.waiting = False
        if connection.transport is not None:
            connection.transport.close()
    for task in list(_background):
        task.cancel()


@dataclass
class Summary:
    seconds: float
    written: int
    offered_rps: float  # arrivals written or refused a connection, per second, as achieved
    answered: int
    goodput_rps: float  # 201s within one second of being written, per second
    admitted: int
    admitted_p50_ms: float
    admitted_p99_ms: float
    admitted_max_ms: float
    refused: int
    refused_p50_ms: float
    refused_p99_ms: float
    other_statuses: dict[str, int]
    connection_failures: int  # refused a connection, or cut off before the answer
    unanswered: int
    generator_full: int
    generator_lag_p99_ms: float


def _quantile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else 0.0
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def summarize(tally: Tally, seconds: float) -> Summary:
    admitted = [took for status, _, took in tally.answered if status in ADMITTED]
    refused = [took for status, _, took in tally.answered if status in REFUSED]
    others: dict[str, int] = {}
    for status, _, _ in tally.answered:
        if status not in ADMITTED and status not in REFUSED:
            others[str(status)] = others.get(str(status), 0) + 1
    good = sum(status == 201 and took <= 1.0 for status, _, took in tally.answered)
    return Summary(
        seconds=seconds,
        written=tally.written,
        offered_rps=(tally.written + tally.not_connected) / seconds,
        answered=len(tally.answered),
        goodput_rps=good / seconds,
        admitted=len(admitted),
        admitted_p50_ms=_quantile(admitted, 50),
        admitted_p99_ms=_quantile(admitted, 99),
        admitted_max_ms=max(admitted, default=0.0) * 1000,
        refused=len(refused),
        refused_p50_ms=_quantile(refused, 50),
        refused_p99_ms=_quantile(refused, 99),
        other_statuses=others,
        connection_failures=tally.not_connected + tally.cut_off,
        unanswered=tally.unanswered,
        generator_full=tally.generator_full,
        generator_lag_p99_ms=_quantile(tally.lag, 99),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("url", help="the purchase URL, http://host:port/v1/sales/ID/purchases")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="open loop: arrivals per second")
    parser.add_argument("--closed", type=int, help="closed loop: this many connections")
    parser.add_argument("--max-connections", type=int, default=8000)
    parser.add_argument(
        "--ready", type=int, default=512, help="open loop: connections opened beforehand"
    )
    args = parser.parse_args()
    if (args.rate is None) == (args.closed is None):
        parser.error("give exactly one of --rate (open loop) and --closed (retry storm)")
    if args.rate is not None:
        run = open_loop(args.url, args.rate, args.seconds, args.max_connections, args.ready)
    else:
        run = closed_loop(args.url, args.closed, args.seconds)
    tally = uvloop.run(run)
    print(json.dumps(asdict(summarize(tally, args.seconds))))


if __name__ == "__main__":
    main()
