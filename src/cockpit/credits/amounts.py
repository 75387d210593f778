"""Credit amounts: exact decimals with at most 6 places, checked and written the same way everywhere."""

from __future__ import annotations

from decimal import Decimal

from cockpit.kit.errors import InvalidInput
from cockpit.kit.money import grouped, plain

__all__ = ["MAX_AMOUNT", "MICRO", "ZERO", "check_credits", "grouped", "plain"]

ZERO = Decimal(0)
MICRO = Decimal(1_000_000)
# Far above any budget; keeps micro-credits well within a BigInteger.
MAX_AMOUNT = Decimal(1_000_000_000_000)


def check_credits(value: Decimal, *, field: str, positive: bool = False) -> Decimal:
    """Credits (0 or more; more than 0 with ``positive``) with at most 6 decimal places.

    Raises InvalidInput naming ``field`` otherwise."""
    problem = None
    if not value.is_finite():
        problem = "must be a number"
    elif positive and value <= 0:
        problem = "must be greater than 0"
    elif value < 0:
        problem = "must be 0 or more"
    elif value > MAX_AMOUNT:
        problem = f"must be at most {grouped(MAX_AMOUNT)}"
    elif value * MICRO != (value * MICRO).to_integral_value():
        problem = "must have at most 6 decimal places"
    if problem is not None:
        raise InvalidInput(
            "invalid_amount", f"The {field} {problem}.", details=[{"field": field, "message": problem}]
        )
    return value + ZERO  # normalises -0
