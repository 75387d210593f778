"""Exact amounts as text."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def plain(value: Decimal) -> str:
    """An exact decimal without trailing zeros or exponent: 0.000067500000 -> "0.0000675"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def grouped(value: Decimal) -> str:
    """Like ``plain`` with thousands separators: 12000 -> "12,000", 1500.25 -> "1,500.25"."""
    return format(Decimal(plain(value)), ",f")


CENT = Decimal("0.01")


def exact(value: Decimal | int) -> Decimal:
    """An amount as a Decimal; a float (or a bool) is refused: money never goes through one."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"an exact amount is needed, not {type(value).__name__}")
    return Decimal(value)


def credits_text(value: Decimal | int) -> str:
    """Credits for reading: 18777.77446 -> "18,777.77", 12000 -> "12,000.00"."""
    text = f"{exact(value).quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"
    return "0.00" if text == "-0.00" else text


def usd_rounded(amount: Decimal) -> Decimal:
    """A cost as people read it: to the cent from $1 up; below, to 4 significant digits (and never
    coarser than the cent)."""
    if amount == 0 or abs(amount) >= 1:
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    step = min(Decimal(1).scaleb(amount.adjusted() - 3), CENT)  # keep 4 significant digits
    rounded = amount.quantize(step, rounding=ROUND_HALF_UP)
    return rounded.quantize(CENT) if abs(rounded) >= 1 else rounded


def usd_text(value: Decimal | int) -> str:
    """A cost in USD: to the cent from $1 up ("$1,234.57"), 4 significant digits below ("$0.6423",
    "$0.0001871", at least to the cent: "$0.50"), "$0.00" for 0."""
    rounded = usd_rounded(exact(value))
    sign = "-" if rounded < 0 else ""
    if rounded == 0 or abs(rounded) >= 1:
        return f"{sign}${abs(rounded):,.2f}"
    whole, _, fraction = plain(abs(rounded)).partition(".")
    return f"{sign}${whole}.{fraction.ljust(2, '0')}"


def number_text(value: int | Decimal) -> str:
    """A count with thousands separators: 12345 -> "12,345"."""
    return format(exact(value), ",f")
