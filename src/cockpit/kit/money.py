"""Exact amounts as text."""

from __future__ import annotations

from decimal import Decimal


def plain(value: Decimal) -> str:
    """An exact decimal without trailing zeros or exponent: 0.000067500000 -> "0.0000675"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def grouped(value: Decimal) -> str:
    """Like ``plain`` with thousands separators: 12000 -> "12,000", 1500.25 -> "1,500.25"."""
    return format(Decimal(plain(value)), ",f")
