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

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.amounts import ZERO
from cockpit.credits.models import (
    Cadence,
    CreditCycle,
    CycleStart,
    EntryKind,
    GroupBudget,
    LedgerEntry,
    MemberAllocation,
)
from cockpit.events.service import emit
from cockpit.kit.time import day_text, utcnow
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account
from cockpit.users.models import User

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
    actor_id: uuid.UUID | None = None,
) -> CreditCycle:
    """Close ``previous`` (if any) at ``at`` and open the next cycle from ``at`` (announced as
    ``cycle.reset``, once per cycle, unless it is the account's first)."""
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
    if previous is not None:
        await carry_allocations(session, account.id, cycle)
        last_day = cycle.ends_at - timedelta(microseconds=1)  # ends_at is the next cycle's start
        await emit(
            session,
            account.id,
            "cycle.reset",
            {
                "starts_at": day_text(cycle.starts_at, account.timezone),
                "ends_at": day_text(last_day, account.timezone),
            },
            actor_id=actor_id,
            dedupe_key=f"cycle:{cycle.id}",
        )
    return cycle


async def carry_allocations(session: AsyncSession, account_id: uuid.UUID, cycle: CreditCycle) -> None:
    """Each group's monthly budget and each member's monthly allocation, entered again at the start
    of a new cycle: a statement of any cycle starts from what the group or member had for it (extra
    credits belong to one cycle and are not carried)."""
    rows: list[dict[str, object]] = []

    def entry(amount: object, description: str, group_id: object, user_id: object = None) -> None:
        rows.append(
            {
                "id": uuid.uuid4(),
                "account_id": account_id,
                "cycle_id": cycle.id,
                "created_at": cycle.starts_at,
                "kind": EntryKind.cycle_allocation,
                "amount": amount,
                "user_id": user_id,
                "group_id": group_id,
                "description": description,
            }
        )

    budgets = await session.execute(
        select(GroupBudget.group_id, GroupBudget.monthly).where(
            GroupBudget.account_id == account_id, GroupBudget.monthly != 0
        )
    )
    for group_id, monthly in budgets:
        entry(monthly, f"Monthly budget for cycle {cycle.seq}", group_id)
    allocations = await session.execute(
        select(MemberAllocation.user_id, MemberAllocation.monthly, User.group_id)
        .join(User, User.id == MemberAllocation.user_id)
        .where(MemberAllocation.account_id == account_id, MemberAllocation.monthly != 0)
    )
    for user_id, monthly, group_id in allocations:
        entry(monthly, f"Monthly allocation for cycle {cycle.seq}", group_id, user_id)
    if rows:
        await session.execute(insert(LedgerEntry), rows)


def account_limit(account: Account, cycle: CreditCycle) -> Decimal:
    """What the account may spend in ``cycle`` (its current one): its credits per cycle plus the
    credits added to the cycle (top-ups)."""
    return account.credits_per_cycle + cycle.added_credits


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
