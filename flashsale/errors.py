"""The project's exception tree: failures are exceptions, business outcomes are values."""


class FlashsaleError(Exception):
    """Root of every error flashsale raises on purpose."""


class ConfigError(FlashsaleError):
    """A setting is missing or invalid; the message names it."""


class StoreUnavailable(FlashsaleError):
    """Redis did not answer (down, timed out, refused); retrying later is safe."""


class BreakerOpen(StoreUnavailable):
    """Redis failed repeatedly; calls are refused without trying until the breaker probes."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Redis is failing; the circuit breaker is open for {retry_after:.1f}s")
        self.retry_after = retry_after


class EmbeddedRedisError(FlashsaleError):
    """The private redis-server could not be started or kept running."""
