"""The project's exception tree: failures are exceptions, business outcomes are values.

Every error flashsale raises on purpose derives from FlashsaleError and ends in `Error`, so a
caller can catch the whole tree or one branch of it.
"""


class FlashsaleError(Exception):
    """Root of every error flashsale raises on purpose."""


class ConfigError(FlashsaleError):
    """A setting is missing or invalid; the message names it."""


class StoreUnavailableError(FlashsaleError):
    """Redis did not answer (down, timed out, refused); retrying later is safe.
    `may_have_run`: the command may have reached Redis and run there (a reply lost or late),
    as opposed to refused before it ran (no connection, the breaker, an error reply)."""

    def __init__(self, message: str, *, may_have_run: bool = False) -> None:
        super().__init__(message)
        self.may_have_run = may_have_run


class BreakerOpenError(StoreUnavailableError):
    """Redis failed repeatedly; calls are refused without trying until the breaker probes."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Redis is failing; the circuit breaker is open for {retry_after:.1f}s")
        self.retry_after = retry_after


class RefusedError(FlashsaleError):
    """Work refused before it reached the stock (shed or rate limited): retrying later is
    always safe. `reason` is the shed metric's label; `retry_after` is in seconds."""

    def __init__(self, reason: str, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


class OverloadedError(RefusedError):
    """The engine is at capacity or past the request's deadline (503)."""


class RateLimitedError(RefusedError):
    """This client or user sent more than its rate allows (429)."""


class EmbeddedRedisError(FlashsaleError):
    """The private redis-server could not be started or kept running."""


class SinkUnavailableError(FlashsaleError):
    """The order store cannot be reached now; the same batch can be retried later."""


class PoisonEventError(FlashsaleError):
    """A stream entry that no retry can apply (malformed or impossible fields)."""
