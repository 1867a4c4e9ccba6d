"""Refusing by queueing time: CoDel for requests, as folly's `Codel` does it.

A request's queueing delay is how long it waited between its head arriving and admission
looking at it (api/protocol.py stamps the arrival). A short queue that drains is harmless;
a standing queue is not. CoDel tells them apart by the *minimum* delay over an interval:

- every `interval`, the process is overloaded when the smallest delay seen in the last
  interval exceeded `target` (folly: 100 ms and 5 ms - even the luckiest request waited);
- while overloaded, requests that waited more than twice the target (folly's "slough
  timeout", 10 ms) are refused at once: under a standing queue they are the ones that can
  no longer be served in time, and refusing them is what drains the queue;
- whatever the state, a request that has waited out its whole deadline is refused: nothing
  can answer it in time.

Refusing the old ones first rather than the new (adaptive LIFO, in Facebook's "Fail at
scale") has the same aim - serve those who can still be served well - without reordering
aiohttp's queue, which the engine does not own.

Sources: folly/executors/Codel.h and Codel.cpp; Nichols & Jacobson, "Controlling Queue
Delay" (ACM Queue, 2012); Maurer, "Fail at Scale" (ACM Queue, 2015).
"""

from __future__ import annotations


class QueueDelay:
    """One per process. `refuse(delay, now)` says whether a request that waited `delay`
    seconds is refused; times are seconds, `now` from a monotonic clock (the event loop's).
    A target of 0 turns CoDel off and keeps only the deadline rule."""

    def __init__(self, target: float, interval: float, deadline: float) -> None:
        self._target = target
        self._interval = interval
        self._deadline = deadline
        self._interval_ends = 0.0
        self._min_delay = 0.0
        self.overloaded = False

    @property
    def slough_timeout(self) -> float:
        return 2 * self._target

    def refuse(self, delay: float, now: float) -> bool:
        if delay >= self._deadline:
            return True
        if self._target <= 0:  # CoDel off: only the deadline rule
            return False
        if now >= self._interval_ends:
            # The interval is over: judge it by its best case, and start the next.
            self.overloaded = self._min_delay > self._target
            self._interval_ends = now + self._interval
            self._min_delay = delay
        elif delay < self._min_delay:
            self._min_delay = delay
        return self.overloaded and delay > self.slough_timeout
