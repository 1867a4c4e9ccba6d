"""flashsale: a flash-sale order engine with atomic Redis reservations."""

__version__ = "0.1.0"
