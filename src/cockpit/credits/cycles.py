"""Credit cycles: when they start and end, and rolling over to a new one on time.

Cadences other than 15 days follow the calendar of the account's time zone: a monthly cycle ends
on the first of the next month at 00:00, a weekly one on Monday at 00:00, a daily one at
midnight, a 12-hour one at 00:00 or 12:00, an hourly one on the hour. A cycle started by "Reset
cycle now" or a change of cadence starts at once and ends at the next such boundary. A 15-day
cycle ends 15 days after it started.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.amounts import ZERO
from cockpit.credits.models import Cadence, CreditCycle, CycleStart, EntryKind, LedgerEntry
from cockpit.kit.time import utcnow
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account

UTC = ZoneInfo("UTC")


def _zone(account: Account) -> ZoneInfo:
    try:
        return ZoneInfo(account.timezone or "UTC")
    except (KeyError, ValueError):
        return UTC


def period_start(cadence: Cadence, moment: datetime, zone: ZoneInfo) -> datetime:
    """The calendar boundary at or before ``moment`` (for 15 days: ``moment`` itself)."""
    local = moment.astimezone(zone)
    if cadence is Cadence.month:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif cadence is Cadence.week:
        start = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    elif cadence is Cadence.day:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif cadence is Cadence.hours_12:
        start = local.replace(hour=0 if local.hour < 12 else 12, minute=0, second=0, microsecond=0)
    elif cadence is Cadence.hour:
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        return moment
    return start.astimezone(UTC)


def period_end(cadence: Cadence, start: datetime, zone: ZoneInfo) -> datetime:
    """When a cycle that starts at ``start`` ends: the next calendar boundary after it."""
    local = start.astimezone(zone)
    if cadence is Cadence.days_15:
        return start + timedelta(days=15)
    if cadence is Cadence.month:
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = local.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)
    elif cadence is Cadence.week:
        monday = local - timedelta(days=local.weekday())
        end = (monday + timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
    elif cadence is Cadence.day:
        end = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    elif cadence is Cadence.hours_12:
        base = local.replace(minute=0, second=0, microsecond=0)
        end = base.replace(hour=12) if local.hour < 12 else (base + timedelta(days=1)).replace(hour=0)
    else:  # an hour is an hour of real time, also across a change of the clocks
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC) + timedelta(hours=1)
    # Wall-clock arithmetic in the zone, then back to UTC (a DST change shortens or lengthens a day).
    return end.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)


async def open_cycle(session: AsyncSession, account_id: uuid.UUID) -> CreditCycle | None:
    return await session.scalar(
        select(CreditCycle).where(CreditCycle.account_id == account_id, CreditCycle.closed_at.is_(None))
    )


async def start_cycle(
    session: AsyncSession,
    account: Account,
    *,
    started_by: CycleStart,
    at: datetime,
    previous: CreditCycle | None,
    actor_label: str | None = None,
) -> CreditCycle:
    """Close ``previous`` (if any) at ``at`` and open the next cycle from ``at``."""
    cadence = Cadence(account.cycle_cadence)
    if previous is not None:
        previous.closed_at = at
        if previous.ends_at > at:
            previous.ends_at = at  # ended early: reset or cadence change
    cycle = CreditCycle(
        id=uuid.uuid4(),
        account_id=account.id,
        seq=(previous.seq + 1) if previous is not None else 1,
        cadence=cadence.value,
        starts_at=at,
        ends_at=period_end(cadence, at, _zone(account)),
        started_by=started_by.value,
        credits_per_cycle=account.credits_per_cycle,
    )
    session.add(cycle)
    await session.flush()
    session.add(
        LedgerEntry(
            id=uuid.uuid4(),
            account_id=account.id,
            cycle_id=cycle.id,
            created_at=at,
            kind=EntryKind.cycle_reset,
            amount=account.credits_per_cycle,
            description=f"Cycle {cycle.seq} started ({started_by.value.replace('_', ' ')})",
            actor_label=actor_label,
        )
    )
    return cycle


async def current_cycle(
    session: AsyncSession, account: Account, *, now: datetime | None = None
) -> CreditCycle:
    """The account's current cycle: created on first use, rolled over when its end has passed (also
    when the server was down across one or more boundaries: the new cycle is the period that
    contains ``now``; the periods in between had no activity)."""
    now = now or utcnow()
    cycle = await open_cycle(session, account.id)
    if cycle is not None and cycle.ends_at > now:
        return cycle
    # Creating or rolling over: serialise with other writers (another request, the usage writer of
    # this or another process) on the account row, then look again.
    await lock_account(session, account.id)
    cycle = await open_cycle(session, account.id)
    cadence = Cadence(account.cycle_cadence)
    zone = _zone(account)
    if cycle is None:
        return await start_cycle(
            session,
            account,
            started_by=CycleStart.initial,
            at=period_start(cadence, now, zone),
            previous=None,
        )
    while cycle.ends_at <= now:
        start = cycle.ends_at
        if period_end(cadence, start, zone) <= now:
            start = period_start(cadence, now, zone) if cadence is not Cadence.days_15 else now
        cycle = await start_cycle(session, account, started_by=CycleStart.scheduled, at=start, previous=cycle)
    return cycle


async def cycle_at(session: AsyncSession, account_id: uuid.UUID, moment: datetime) -> CreditCycle | None:
    """The cycle of an account that contained ``moment`` (None before the first one)."""
    return await session.scalar(
        select(CreditCycle)
        .where(CreditCycle.account_id == account_id, CreditCycle.starts_at <= moment)
        .order_by(CreditCycle.starts_at.desc())
        .limit(1)
    )


async def cycles_of(session: AsyncSession, account_id: uuid.UUID) -> list[CreditCycle]:
    """An account's cycles, oldest first."""
    rows = await session.scalars(
        select(CreditCycle).where(CreditCycle.account_id == account_id).order_by(CreditCycle.starts_at)
    )
    return list(rows.all())


def extra_now(extra: Decimal, extra_cycle_id: uuid.UUID | None, cycle: CreditCycle) -> Decimal:
    """Extra credits count only in the cycle they were given for."""
    return extra if extra_cycle_id == cycle.id else ZERO
