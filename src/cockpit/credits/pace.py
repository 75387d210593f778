"""Budget pace: at the rate credits were used so far this cycle, when will a budget run out?

``pace`` is the computation; ``budget_pace`` and ``member_paces`` give it for the account, each group
and each member from the credits figures (``figures``), for the overview page and the API.

The burn is the credits used since the cycle started divided by the days elapsed (at least one
hour, so that the first minutes of a cycle do not project wildly); the run-out moment is now plus the
credits left divided by the burn. When it falls at or after the cycle's end the budget lasts the
cycle. Everything is exact (Decimal); the moment is rounded down to the minute.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Generic, Literal, TypeVar

from sqlalchemy import BigInteger, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits.figures import AccountFigures, GroupFigures, MemberFigures, member_figures_of, micro
from cockpit.credits.models import CreditCycle, EntryKind, LedgerEntry, MemberAllocation
from cockpit.credits.settings import Overview, overview
from cockpit.kit.pagination import Page, PageParams
from cockpit.users.models import User, UserStatus

ZERO = Decimal(0)
DAY = Decimal(86400)
MIN_ELAPSED = timedelta(hours=1)
CENT = Decimal("0.01")


class PaceStatus(StrEnum):
    runs_out = "runs_out"  # before the cycle ends, at ``runs_out_at``
    lasts_cycle = "lasts_cycle"
    exhausted = "exhausted"  # nothing left now
    no_limit = "no_limit"  # credit tracking is off: nothing is enforced
    no_budget = "no_budget"  # a budget of 0 and nothing used


@dataclass(frozen=True)
class Pace:
    used: Decimal
    budget: Decimal | None  # None: no limit
    daily_burn: Decimal  # credits per day, to the cent
    runs_out_at: datetime | None  # None: lasts the cycle (or no limit, or nothing used)
    exhausted: bool  # nothing left now

    @property
    def lasts_the_cycle(self) -> bool:
        return self.runs_out_at is None and not self.exhausted

    @property
    def left(self) -> Decimal | None:
        return None if self.budget is None else self.budget - self.used

    @property
    def status(self) -> PaceStatus:
        if self.budget is None:
            return PaceStatus.no_limit
        if self.budget <= 0 and self.used <= 0:
            return PaceStatus.no_budget  # never had credits: nothing runs out
        if self.exhausted:
            return PaceStatus.exhausted
        if self.runs_out_at is not None:
            return PaceStatus.runs_out
        return PaceStatus.lasts_cycle

    @property
    def at_risk(self) -> bool:
        """Out of credits, or running out before the cycle ends at this pace."""
        return self.status in (PaceStatus.exhausted, PaceStatus.runs_out)


def pace(
    *, used: Decimal, budget: Decimal | None, cycle_start: datetime, cycle_end: datetime, now: datetime
) -> Pace:
    elapsed = max(min(now, cycle_end) - cycle_start, MIN_ELAPSED)
    seconds = Decimal(elapsed.days * 86400 + elapsed.seconds)
    per_second = used / seconds if used > 0 else ZERO
    daily = (per_second * DAY).quantize(CENT, rounding=ROUND_HALF_UP)
    if budget is None:
        return Pace(used, None, daily, None, exhausted=False)
    left = budget - used
    if left <= 0:
        return Pace(used, budget, daily, now, exhausted=True)
    if per_second == 0:
        return Pace(used, budget, daily, None, exhausted=False)
    moment = now + timedelta(seconds=int(left / per_second))
    moment = moment.replace(second=0, microsecond=0)
    return Pace(used, budget, daily, moment if moment < cycle_end else None, exhausted=False)


# ---- the account's paces ----

F = TypeVar("F", AccountFigures, GroupFigures, MemberFigures)
MemberOrder = Literal["name", "risk"]


@dataclass(frozen=True)
class Paced(Generic[F]):
    figures: F
    pace: Pace


def _paced(figures: F, budget: Decimal, cycle: CreditCycle, now: datetime, *, tracking: bool) -> Paced[F]:
    """Without credit tracking nothing is debited or enforced: every budget is "no limit"."""
    return Paced(
        figures,
        pace(
            used=figures.used,
            budget=budget if tracking else None,
            cycle_start=cycle.starts_at,
            cycle_end=cycle.ends_at,
            now=now,
        ),
    )


def account_pace(
    figures: AccountFigures, cycle: CreditCycle, now: datetime, *, tracking: bool
) -> Paced[AccountFigures]:
    return _paced(figures, figures.limit, cycle, now, tracking=tracking)


def group_pace(
    figures: GroupFigures, cycle: CreditCycle, now: datetime, *, tracking: bool
) -> Paced[GroupFigures]:
    return _paced(figures, figures.budget, cycle, now, tracking=tracking)


def member_pace(
    figures: MemberFigures, cycle: CreditCycle, now: datetime, *, tracking: bool
) -> Paced[MemberFigures]:
    return _paced(figures, figures.allocated, cycle, now, tracking=tracking)


@dataclass(frozen=True)
class MemberPaces:
    page: Page[Paced[MemberFigures]]
    at_risk: int  # members (of every page) out of credits or running out before the cycle ends


def _risk_order(item: Paced[MemberFigures]) -> tuple[int, datetime, str, str]:
    p, user = item.pace, item.figures.user
    rank = 0 if p.status is PaceStatus.exhausted else 1 if p.status is PaceStatus.runs_out else 2
    moment = p.runs_out_at or datetime.max.replace(tzinfo=UTC)
    return rank, moment, user.name.lower(), user.email


async def _everyone(session: AsyncSession, account_id: uuid.UUID, cycle: CreditCycle) -> list[MemberFigures]:
    """Every member's figures in two queries: the active members, and anyone (a member deactivated
    since) who used or holds credits this cycle."""
    rows = (
        await session.execute(
            select(User, MemberAllocation)
            .outerjoin(MemberAllocation, MemberAllocation.user_id == User.id)
            .where(User.account_id == account_id)
        )
    ).all()
    table = LedgerEntry.__table__.c
    debits = case((table.kind == EntryKind.usage_debit.value, table.amount), else_=0)
    holds = case((table.kind.in_([EntryKind.hold.value, EntryKind.release.value]), table.amount), else_=0)
    sums = await session.execute(
        select(table.user_id, func.sum(debits, type_=BigInteger), func.sum(holds, type_=BigInteger))
        .where(
            table.account_id == account_id,
            table.cycle_id == cycle.id,
            table.user_id.is_not(None),
            table.kind.in_([EntryKind.usage_debit.value, EntryKind.hold.value, EntryKind.release.value]),
        )
        .group_by(table.user_id)
    )
    usage = {uuid.UUID(str(uid)): (-micro(u), -micro(h)) for uid, u, h in sums.all()}
    found = []
    for user, allocation in rows:
        used, held = usage.get(user.id, (ZERO, ZERO))
        if user.status is UserStatus.active or used or held:
            found.append(member_figures_of(user, allocation, cycle, used=used, held=held))
    return found


async def member_paces(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    *,
    cycle: CreditCycle,
    now: datetime,
    tracking: bool,
    order: MemberOrder = "name",
) -> MemberPaces:
    """Every member's pace this cycle (administrators), one page: by name, or the members out of
    credits first, then those who run out soonest, then the others by name."""
    actor.require(Permission.credits_manage)
    paced = [
        member_pace(m, cycle, now, tracking=tracking)
        for m in await _everyone(session, actor.account_id, cycle)
    ]
    if order == "risk":
        paced.sort(key=_risk_order)
    else:
        paced.sort(key=lambda p: (p.figures.user.name.lower(), p.figures.user.email))
    items = paced[params.offset : params.offset + params.per_page]
    page = Page(items=items, total=len(paced), page=params.page, per_page=params.per_page)
    return MemberPaces(page, sum(1 for p in paced if p.pace.at_risk))


@dataclass(frozen=True)
class BudgetPace:
    now: datetime
    cycle: CreditCycle
    tracking_enabled: bool
    me: Paced[MemberFigures] | None
    account: Paced[AccountFigures] | None  # administrators only
    groups: list[Paced[GroupFigures]] | None  # administrators only
    members: MemberPaces | None  # administrators only


async def paces_of(
    session: AsyncSession, actor: Actor, view: Overview, members: PageParams, *, order: MemberOrder = "name"
) -> BudgetPace:
    """The paces of an overview's figures (``settings.overview``), and a page of every member's for
    administrators."""
    now, cycle, tracking = view.now, view.cycle, view.tracking_enabled
    account = groups = everyone = None
    if view.account is not None and view.groups is not None:
        account = account_pace(view.account, cycle, now, tracking=tracking)
        groups = [group_pace(g, cycle, now, tracking=tracking) for g in view.groups]
        everyone = await member_paces(
            session, actor, members, cycle=cycle, now=now, tracking=tracking, order=order
        )
    me = member_pace(view.me, cycle, now, tracking=tracking) if view.me is not None else None
    return BudgetPace(now, cycle, tracking, me, account, groups, everyone)


async def budget_pace(
    session: AsyncSession, actor: Actor, members: PageParams, *, order: MemberOrder = "name"
) -> BudgetPace:
    """The pace of the account, every group and every member (a page of them) for administrators;
    of the caller's own allowance for everyone else."""
    view = await overview(session, actor)
    return await paces_of(session, actor, view, members, order=order)
