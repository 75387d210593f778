"""Where credit cycles start and end: every cadence in UTC and in Europe/Paris (DST changes included),
and the roll-over of ``current_cycle`` after the server was down across many boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.cycles import current_cycle, period_end, period_start
from cockpit.credits.models import Cadence, CreditCycle, CycleStart
from tests.builders import make_account

Z = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def cycle_of(cadence: Cadence, moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = period_start(cadence, moment, zone)
    return start, period_end(cadence, start, zone)


# ---- UTC ----


def test_a_month_runs_from_the_first_to_the_first_of_the_next_month() -> None:
    assert cycle_of(Cadence.month, utc(2026, 3, 15, 10, 30), Z) == (utc(2026, 3, 1), utc(2026, 4, 1))
    assert cycle_of(Cadence.month, utc(2026, 2, 28, 23, 59, 59), Z) == (utc(2026, 2, 1), utc(2026, 3, 1))


def test_december_ends_on_the_first_of_january_of_the_next_year() -> None:
    assert cycle_of(Cadence.month, utc(2026, 12, 31, 23, 0), Z) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_a_week_starts_on_monday() -> None:
    # 2026-11-22 is a Sunday: its week began on Monday the 16th.
    assert cycle_of(Cadence.week, utc(2026, 11, 22, 23, 30), Z) == (utc(2026, 11, 16), utc(2026, 11, 23))
    # Monday 00:00 itself opens a new week.
    assert cycle_of(Cadence.week, utc(2026, 11, 23), Z) == (utc(2026, 11, 23), utc(2026, 11, 30))
    # A week spanning the turn of the year.
    assert cycle_of(Cadence.week, utc(2027, 1, 1, 12), Z) == (utc(2026, 12, 28), utc(2027, 1, 4))


def test_a_day_runs_from_midnight_to_midnight() -> None:
    assert cycle_of(Cadence.day, utc(2026, 12, 31, 18, 5), Z) == (utc(2026, 12, 31), utc(2027, 1, 1))


def test_twelve_hours_split_the_day_at_noon() -> None:
    assert cycle_of(Cadence.hours_12, utc(2026, 6, 10, 11, 59, 59), Z) == (
        utc(2026, 6, 10, 0),
        utc(2026, 6, 10, 12),
    )
    assert cycle_of(Cadence.hours_12, utc(2026, 6, 10, 12, 0), Z) == (
        utc(2026, 6, 10, 12),
        utc(2026, 6, 11, 0),
    )
    assert cycle_of(Cadence.hours_12, utc(2026, 6, 10, 23, 59), Z) == (
        utc(2026, 6, 10, 12),
        utc(2026, 6, 11, 0),
    )


def test_an_hour_runs_on_the_hour() -> None:
    assert cycle_of(Cadence.hour, utc(2026, 6, 10, 10, 37, 12), Z) == (
        utc(2026, 6, 10, 10),
        utc(2026, 6, 10, 11),
    )
    assert cycle_of(Cadence.hour, utc(2026, 12, 31, 23, 5), Z) == (utc(2026, 12, 31, 23), utc(2027, 1, 1, 0))


def test_fifteen_days_start_at_the_moment_and_last_exactly_fifteen_days() -> None:
    moment = utc(2026, 3, 20, 9, 15, 30)
    assert period_start(Cadence.days_15, moment, Z) == moment
    assert period_end(Cadence.days_15, moment, Z) == utc(2026, 4, 4, 9, 15, 30)
    # In a DST zone too: 15 x 24 hours, not wall-clock days.
    assert period_end(Cadence.days_15, moment, PARIS) == utc(2026, 4, 4, 9, 15, 30)


@pytest.mark.parametrize(
    ("cadence", "end"),
    [
        (Cadence.month, utc(2026, 4, 1)),
        (Cadence.week, utc(2026, 3, 23)),  # 2026-03-18 is a Wednesday
        (Cadence.day, utc(2026, 3, 19)),
        (Cadence.hours_12, utc(2026, 3, 18, 12)),
        (Cadence.hour, utc(2026, 3, 18, 11)),
    ],
)
def test_a_cycle_started_mid_period_ends_at_the_next_boundary(cadence: Cadence, end: datetime) -> None:
    # "Reset cycle now" or a cadence change: the cycle starts at once and ends on the calendar.
    assert period_end(cadence, utc(2026, 3, 18, 10, 30), Z) == end


# ---- Europe/Paris (UTC+1, UTC+2 from 2026-03-29 02:00 to 2026-10-25 03:00 local) ----


def test_a_paris_month_starts_at_local_midnight() -> None:
    # 2026-12-01 00:00 in Paris is 23:00 UTC the day before; the year ends likewise.
    assert cycle_of(Cadence.month, utc(2026, 12, 15), PARIS) == (utc(2026, 11, 30, 23), utc(2026, 12, 31, 23))
    # 2026-12-31 23:30 UTC is already January in Paris.
    assert cycle_of(Cadence.month, utc(2026, 12, 31, 23, 30), PARIS) == (
        utc(2026, 12, 31, 23),
        utc(2027, 1, 31, 23),
    )


def test_a_paris_month_across_the_spring_dst_change_is_an_hour_shorter() -> None:
    start, end = cycle_of(Cadence.month, utc(2026, 3, 29, 12), PARIS)
    assert (start, end) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert end - start == timedelta(days=31, hours=-1)


def test_a_paris_month_across_the_autumn_dst_change_is_an_hour_longer() -> None:
    start, end = cycle_of(Cadence.month, utc(2026, 10, 25, 12), PARIS)
    assert (start, end) == (utc(2026, 9, 30, 22), utc(2026, 10, 31, 23))
    assert end - start == timedelta(days=31, hours=1)


def test_paris_days_on_dst_changes_last_23_and_25_hours() -> None:
    assert cycle_of(Cadence.day, utc(2026, 3, 29, 12), PARIS) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert cycle_of(Cadence.day, utc(2026, 10, 25, 12), PARIS) == (
        utc(2026, 10, 24, 22),
        utc(2026, 10, 25, 23),
    )


def test_a_paris_week_with_the_autumn_change_runs_monday_to_monday_local() -> None:
    start, end = cycle_of(Cadence.week, utc(2026, 10, 22, 12), PARIS)
    assert (start, end) == (utc(2026, 10, 18, 22), utc(2026, 10, 25, 23))
    assert start.astimezone(PARIS).weekday() == 0
    assert end.astimezone(PARIS).weekday() == 0


def test_paris_twelve_hours_split_at_local_noon() -> None:
    # In winter 10:30 UTC is 11:30 in Paris (morning) and 11:30 UTC is 12:30 (afternoon).
    assert cycle_of(Cadence.hours_12, utc(2026, 1, 10, 10, 30), PARIS) == (
        utc(2026, 1, 9, 23),
        utc(2026, 1, 10, 11),
    )
    assert cycle_of(Cadence.hours_12, utc(2026, 1, 10, 11, 30), PARIS) == (
        utc(2026, 1, 10, 11),
        utc(2026, 1, 10, 23),
    )
    # The morning of the spring change has 11 hours, the autumn one 13.
    start, end = cycle_of(Cadence.hours_12, utc(2026, 3, 29, 5), PARIS)
    assert (start, end, end - start) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 10), timedelta(hours=11))
    start, end = cycle_of(Cadence.hours_12, utc(2026, 10, 25, 5), PARIS)
    assert (start, end, end - start) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 11), timedelta(hours=13))


def test_paris_hours_across_the_spring_change() -> None:
    # 01:30 CET; the next local hour, 02:00, does not exist: the cycle ends at 03:00 CEST (01:00 UTC).
    assert cycle_of(Cadence.hour, utc(2026, 3, 29, 0, 30), PARIS) == (
        utc(2026, 3, 29, 0),
        utc(2026, 3, 29, 1),
    )
    assert cycle_of(Cadence.hour, utc(2026, 3, 29, 1, 30), PARIS) == (
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 2),
    )


def test_paris_hours_across_the_autumn_change_last_one_hour_each() -> None:
    # Local 02:00-03:00 happens twice (CEST, then CET): two cycles of one hour each.
    assert cycle_of(Cadence.hour, utc(2026, 10, 25, 0, 30), PARIS) == (
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 1),
    )
    assert cycle_of(Cadence.hour, utc(2026, 10, 25, 1, 30), PARIS) == (
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
    )


# ---- roll-over (database) ----


async def _cycles(db: AsyncSession, account_id: object) -> list[CreditCycle]:
    await db.commit()
    rows = await db.scalars(
        select(CreditCycle)
        .where(CreditCycle.account_id == account_id)
        .order_by(CreditCycle.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def test_the_first_cycle_starts_at_the_period_containing_now(db: AsyncSession) -> None:
    account, _ = await make_account(db)
    account.cycle_cadence = Cadence.day.value
    await db.commit()
    cycle = await current_cycle(db, account, now=utc(2026, 5, 6, 15, 20))
    assert (cycle.seq, cycle.starts_at, cycle.ends_at) == (1, utc(2026, 5, 6), utc(2026, 5, 7))
    assert cycle.started_by == CycleStart.initial.value
    # Asking again within the cycle returns it, without creating another.
    assert (await current_cycle(db, account, now=utc(2026, 5, 6, 23, 59))).id == cycle.id
    assert len(await _cycles(db, account.id)) == 1


async def test_a_cycle_rolls_over_on_time_into_the_next_period(db: AsyncSession) -> None:
    account, _ = await make_account(db)
    account.cycle_cadence = Cadence.hour.value
    await db.commit()
    first = await current_cycle(db, account, now=utc(2026, 5, 6, 10, 15))
    second = await current_cycle(db, account, now=utc(2026, 5, 6, 11, 0, 1))
    assert (second.seq, second.starts_at, second.ends_at) == (2, utc(2026, 5, 6, 11), utc(2026, 5, 6, 12))
    assert second.started_by == CycleStart.scheduled.value
    assert first.closed_at == utc(2026, 5, 6, 11)


async def test_after_a_long_gap_one_new_cycle_contains_now(db: AsyncSession) -> None:
    account, _ = await make_account(db)
    account.cycle_cadence = Cadence.hour.value
    await db.commit()
    await current_cycle(db, account, now=utc(2026, 5, 6, 10, 15))
    # The server was down for three days: one new cycle for the hour of now, not 72.
    cycle = await current_cycle(db, account, now=utc(2026, 5, 9, 10, 40))
    assert (cycle.seq, cycle.starts_at, cycle.ends_at) == (2, utc(2026, 5, 9, 10), utc(2026, 5, 9, 11))
    cycles = await _cycles(db, account.id)
    assert [c.seq for c in cycles] == [1, 2]
    assert cycles[0].closed_at == utc(2026, 5, 9, 10)
    assert cycles[0].ends_at == utc(2026, 5, 6, 11)  # it ended on time; nothing ran in between
    assert await db.scalar(select(func.count()).select_from(CreditCycle)) == 2


async def test_a_fifteen_day_cycle_after_a_long_gap_starts_now(db: AsyncSession) -> None:
    account, _ = await make_account(db)
    account.cycle_cadence = Cadence.days_15.value
    await db.commit()
    first = await current_cycle(db, account, now=utc(2026, 1, 1, 8))
    assert (first.starts_at, first.ends_at) == (utc(2026, 1, 1, 8), utc(2026, 1, 16, 8))
    # Just after the end: the next cycle follows on from the previous one.
    second = await current_cycle(db, account, now=utc(2026, 1, 16, 9))
    assert (second.seq, second.starts_at) == (2, utc(2026, 1, 16, 8))
    # Two months later: one cycle from now.
    third = await current_cycle(db, account, now=utc(2026, 3, 20, 12))
    assert (third.seq, third.starts_at, third.ends_at) == (3, utc(2026, 3, 20, 12), utc(2026, 4, 4, 12))


async def test_a_paris_account_rolls_over_at_local_midnight(db: AsyncSession) -> None:
    account, _ = await make_account(db)
    account.cycle_cadence, account.timezone = Cadence.month.value, "Europe/Paris"
    await db.commit()
    first = await current_cycle(db, account, now=utc(2026, 10, 31, 22, 59))
    assert (first.starts_at, first.ends_at) == (utc(2026, 9, 30, 22), utc(2026, 10, 31, 23))
    second = await current_cycle(db, account, now=utc(2026, 10, 31, 23, 0))
    assert (second.seq, second.starts_at, second.ends_at) == (2, utc(2026, 10, 31, 23), utc(2026, 11, 30, 23))
