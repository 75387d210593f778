"""Totals add up field by field (distinct people cannot be added: the larger count is kept)."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal

from cockpit.analytics.figures import Totals


def test_totals_add_every_field() -> None:
    names = [f.name for f in fields(Totals)]
    a = Totals(
        **{
            name: (Decimal(n + 1) / 7 if name in ("cost_usd", "credits") else n + 1)
            for n, name in enumerate(names)
        }
    )
    b = Totals(
        **{
            name: (Decimal(10 * n) / 3 if name in ("cost_usd", "credits") else 10 * n)
            for n, name in enumerate(names)
        }
    )
    total = a + b
    for name in names:
        if name == "active_users":
            assert total.active_users == max(a.active_users, b.active_users)
        else:
            assert getattr(total, name) == getattr(a, name) + getattr(b, name), name
