"""The project's exception tree: failures are exceptions, business outcomes are values."""


class FlashsaleError(Exception):
    """Root of every error flashsale raises on purpose."""


class ConfigError(FlashsaleError):
    """A setting is missing or invalid; the message names it."""


class StoreUnavailable(FlashsaleError):
    """Redis did not answer (down, timed out, refused); retrying later is safe."""


class EmbeddedRedisError(FlashsaleError):
    """The private redis-server could not be started or kept running."""
