"""Budget pace: the daily burn so far and the moment the budget runs out at that pace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cockpit.credits.pace import Pace, pace

START = datetime(2026, 12, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)


def at(now: timedelta, used: int | str, budget: int | None) -> Pace:
    limit = None if budget is None else Decimal(budget)
    return pace(used=Decimal(used), budget=limit, cycle_start=START, cycle_end=END, now=START + now)


def test_a_budget_used_at_a_steady_pace_runs_out_on_the_projected_day() -> None:
    # 300 credits in 5 days: 60 a day; 1,000 - 300 = 700 left: 11 days and 16 hours more.
    p = pace(
        used=Decimal(300),
        budget=Decimal(1000),
        cycle_start=START,
        cycle_end=END,
        now=START + timedelta(days=5),
    )
    assert p.daily_burn == Decimal("60.00")
    assert p.runs_out_at == START + timedelta(days=16, hours=16)
    assert not p.lasts_the_cycle
    assert not p.exhausted


def test_a_slow_pace_lasts_the_cycle() -> None:
    p = pace(
        used=Decimal(10),
        budget=Decimal(1000),
        cycle_start=START,
        cycle_end=END,
        now=START + timedelta(days=10),
    )
    assert p.daily_burn == Decimal("1.00")
    assert p.runs_out_at is None
    assert p.lasts_the_cycle


def test_nothing_used_or_no_limit_never_runs_out_and_an_exhausted_budget_says_so() -> None:
    now = START + timedelta(days=3)
    idle = pace(used=Decimal(0), budget=Decimal(50), cycle_start=START, cycle_end=END, now=now)
    assert (idle.daily_burn, idle.runs_out_at, idle.lasts_the_cycle) == (Decimal("0.00"), None, True)
    free = pace(used=Decimal(90), budget=None, cycle_start=START, cycle_end=END, now=now)
    assert (free.daily_burn, free.runs_out_at) == (Decimal("30.00"), None)
    spent = pace(used=Decimal("50.5"), budget=Decimal(50), cycle_start=START, cycle_end=END, now=now)
    assert spent.exhausted
    assert spent.runs_out_at == now


def test_the_first_minutes_of_a_cycle_count_as_an_hour() -> None:
    p = pace(
        used=Decimal(1),
        budget=Decimal(100),
        cycle_start=START,
        cycle_end=END,
        now=START + timedelta(minutes=1),
    )
    assert p.daily_burn == Decimal("24.00")  # 1 credit in (at least) an hour
    assert p.runs_out_at == START + timedelta(minutes=1, hours=99)
