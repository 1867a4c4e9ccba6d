"""An in-flight limit that follows latency: Netflix's Gradient2, per process.

A fixed bound (the old default, 2,048) lets a process take on far more than it can answer
within the deadline: the excess waits inside it, and every shopper's answer slows down
together. Gradient2 (Netflix concurrency-limits; Envoy's adaptive concurrency filter works
the same way) compares the latency of the last window with the long-run latency:

    gradient = clamp(tolerance * long_rtt / short_rtt, 0.5, 1.0)
    limit    = limit * gradient + queue_size, smoothed, within [floor, ceiling]

While latency holds, the gradient is 1 and the limit creeps up by `queue_size` a window;
when latency rises past `tolerance` times its usual, the limit falls (at most halving a
window), so work waits in front of the process - where admission refuses it cheaply - rather
than inside it. The long-run latency drifts down quickly when latency falls (so a slow period
is not taken as normal) and up slowly. A process that does not use half its limit does not
grow it ("app-limited"). Windows here are spans of time, so the limit moves at the same pace
whatever the request rate.

Source: github.com/Netflix/concurrency-limits, Gradient2Limit (its defaults: tolerance 1.5,
smoothing 0.2, long window 600, queue size 4 - here the square root of the limit when that is
larger, as its Vegas limit does, so that a large limit recovers in seconds, not minutes).
"""

from __future__ import annotations

import math


class AdaptiveLimit:
    def __init__(
        self,
        *,
        floor: int,
        ceiling: int,
        initial: int,
        window: float = 0.1,
        tolerance: float = 1.5,
        smoothing: float = 0.2,
        long_window: int = 600,
    ) -> None:
        self.floor, self.ceiling = floor, ceiling
        self._estimate = float(min(max(initial, floor), ceiling))
        self._window = window
        self._tolerance = tolerance
        self._smoothing = smoothing
        self._long_weight = 2 / (long_window + 1)
        self._long_rtt: float | None = None
        self._window_ends: float | None = None
        self._rtt_sum = 0.0
        self._samples = 0
        self._peak_in_flight = 0

    @property
    def limit(self) -> int:
        return int(self._estimate)

    def sample(self, rtt: float, in_flight: int, now: float) -> None:
        """One answered request: it took `rtt` seconds with `in_flight` requests in flight
        (itself included) when it started; `now` is a monotonic time in seconds."""
        if self._window_ends is None:
            self._window_ends = now + self._window
        self._rtt_sum += rtt
        self._samples += 1
        self._peak_in_flight = max(self._peak_in_flight, in_flight)
        if now >= self._window_ends:
            self._update(self._rtt_sum / self._samples, self._peak_in_flight)
            self._window_ends = now + self._window
            self._rtt_sum, self._samples, self._peak_in_flight = 0.0, 0, 0

    def _update(self, short_rtt: float, peak_in_flight: int) -> None:
        short_rtt = max(short_rtt, 1e-6)
        long_rtt = self._long_rtt
        long_rtt = (
            short_rtt if long_rtt is None else long_rtt + self._long_weight * (short_rtt - long_rtt)
        )
        if long_rtt / short_rtt > 2:  # latency fell well below the long run: follow it down
            long_rtt *= 0.95
        self._long_rtt = long_rtt
        if peak_in_flight < self._estimate / 2:
            return  # app-limited: the limit was not what held latency where it is
        gradient = max(0.5, min(1.0, self._tolerance * long_rtt / short_rtt))
        queue_size = max(4.0, math.sqrt(self._estimate))
        wanted = self._estimate * gradient + queue_size
        smoothed = self._estimate * (1 - self._smoothing) + wanted * self._smoothing
        self._estimate = min(float(self.ceiling), max(float(self.floor), smoothed))
