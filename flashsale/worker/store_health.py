"""Whether the order store takes writes: a gauge, and one log line per change of state
rather than one per try, so an outage of an hour is two lines in the log, not thousands."""

from __future__ import annotations

import logging

from flashsale.metrics import Metrics

log = logging.getLogger("flashsale.order_queue")


class StoreHealth:
    def __init__(self, description: str, metrics: Metrics) -> None:
        self._description = description
        self._metrics = metrics
        self._up = True
        metrics.order_store_up.set(1)

    def down(self, cause: Exception) -> None:
        if self._up:
            self._up = False
            self._metrics.order_store_up.set(0)
            log.error(
                "order store unavailable (%s): events wait in their streams, nothing is "
                "dead-lettered; retrying with backoff",
                cause,
            )

    def up(self) -> None:
        if not self._up:
            self._up = True
            self._metrics.order_store_up.set(1)
            log.warning("order store available again: %s", self._description)
