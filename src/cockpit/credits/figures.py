"""The figures of an account's credits in a cycle: the account's, each group's and each member's.

One definition of each, used by the overview, the allocation pages and the credit requests' checks.
Sums run over the raw micro-credit integers (exact on both backends) and are scaled once. Code that
checks a rule against these figures reads them after the account's lock (``tenancy.lock``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits import ledger
from cockpit.credits.amounts import MICRO, ZERO
from cockpit.credits.cycles import account_limit, extra_now
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, LedgerEntry, MemberAllocation
from cockpit.groups import service as groups
from cockpit.groups.models import Group
from cockpit.tenancy.models import Account
from cockpit.users import service as users
from cockpit.users.models import User


def micro(value: Any) -> Decimal:
    """A SUM of micro-credit integers (None for no rows) as credits."""
    return Decimal(int(value or 0)) / MICRO


@dataclass(frozen=True)
class AccountFigures:
    limit: Decimal  # spendable this cycle: the credits per cycle plus ``added``
    used: Decimal
    held: Decimal
    budgets: Decimal  # the sum of the groups' budgets this cycle
    added: Decimal = ZERO  # credits added to this cycle (top-ups), included in ``limit``

    @property
    def per_cycle(self) -> Decimal:
        return self.limit - self.added

    @property
    def available(self) -> Decimal:
        return self.limit - self.used - self.held

    @property
    def unallocated(self) -> Decimal:
        return self.limit - self.budgets

    @property
    def usage_percent(self) -> Decimal:
        if self.limit <= 0:
            return ZERO
        return (self.used / self.limit * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class GroupFigures:
    group: Group
    members: int  # active users
    monthly: Decimal
    extra: Decimal  # of the current cycle
    distributed: Decimal  # its members' monthly + current-cycle extra
    used: Decimal  # its members' usage this cycle
    auto_approve_limit: Decimal

    @property
    def budget(self) -> Decimal:
        return self.monthly + self.extra

    @property
    def available(self) -> Decimal:
        return self.budget - self.distributed


@dataclass(frozen=True)
class MemberFigures:
    user: User
    monthly: Decimal
    extra: Decimal  # of the current cycle
    used: Decimal
    held: Decimal
    signup_shortfall: Decimal = ZERO

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    @property
    def group_id(self) -> uuid.UUID:
        return self.user.group_id

    @property
    def allocated(self) -> Decimal:
        return self.monthly + self.extra

    @property
    def remaining(self) -> Decimal:
        return self.monthly + self.extra - self.used - self.held

    @property
    def used_percent(self) -> int | None:
        """Credits used as a whole percentage of the allocation (rounded down); None without one."""
        if self.allocated <= 0:
            return None
        return int(self.used * 100 // self.allocated)

    @property
    def warning(self) -> str | None:
        """ "exhausted" at 100 % of the allocation used, "low" from 80 %, else None."""
        percent = self.used_percent
        if percent is None or percent < 80:
            return None
        return "exhausted" if percent >= 100 else "low"


# ---- rows ----


async def budget_row(session: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID) -> GroupBudget | None:
    """The group's budget row, read fresh (what the session may have loaded before is refreshed)."""
    return await session.scalar(
        select(GroupBudget)
        .where(GroupBudget.account_id == account_id, GroupBudget.group_id == group_id)
        .execution_options(populate_existing=True)
    )


async def allocation_row(session: AsyncSession, user: User) -> MemberAllocation | None:
    """The member's allocation row, read fresh."""
    return await session.scalar(
        select(MemberAllocation)
        .where(MemberAllocation.account_id == user.account_id, MemberAllocation.user_id == user.id)
        .execution_options(populate_existing=True)
    )


# ---- sums ----


def _extra_in(table: Any, cycle: CreditCycle | None) -> Any:
    """SQL for a row's extra credits that count in ``cycle`` (none when no cycle)."""
    if cycle is None:
        return 0
    return case((table.extra_cycle_id == cycle.id, table.extra), else_=0)


async def budgets_total(session: AsyncSession, account_id: uuid.UUID, cycle: CreditCycle | None) -> Decimal:
    """The sum of the account's group budgets: monthly plus the extra of ``cycle``."""
    table = GroupBudget.__table__.c
    total = await session.scalar(
        select(func.coalesce(func.sum(table.monthly + _extra_in(table, cycle), type_=BigInteger), 0)).where(
            table.account_id == account_id
        )
    )
    return micro(total)


def _distributed_sums(cycle: CreditCycle) -> tuple[Any, Any]:
    table = MemberAllocation.__table__.c
    monthly = func.sum(table.monthly, type_=BigInteger)
    return monthly, func.sum(_extra_in(table, cycle), type_=BigInteger)


async def distributed(
    session: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID, cycle: CreditCycle
) -> Decimal:
    """The sum of the group's members' monthly and current-cycle extra credits (every member with an
    allocation, deactivated ones too: their allowance comes back when they are reactivated)."""
    table = MemberAllocation.__table__.c
    monthly, extra = _distributed_sums(cycle)
    row = (
        await session.execute(
            select(func.coalesce(monthly, 0), func.coalesce(extra, 0))
            .select_from(MemberAllocation.__table__.join(User, User.id == table.user_id))
            .where(User.account_id == account_id, User.group_id == group_id)
        )
    ).one()
    return micro(row[0]) + micro(row[1])


_USAGE_KINDS = (EntryKind.usage_debit.value, EntryKind.hold.value, EntryKind.release.value)


async def usage_by_user(
    session: AsyncSession, cycle: CreditCycle, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[Decimal, Decimal]]:
    """(used, held) of each user this cycle, in one grouped query."""
    if not user_ids:
        return {}
    table = LedgerEntry.__table__.c
    debits = case((table.kind == EntryKind.usage_debit.value, table.amount), else_=0)
    holds = case((table.kind.in_([EntryKind.hold.value, EntryKind.release.value]), table.amount), else_=0)
    rows = await session.execute(
        select(table.user_id, func.sum(debits, type_=BigInteger), func.sum(holds, type_=BigInteger))
        .where(table.cycle_id == cycle.id, table.user_id.in_(list(user_ids)), table.kind.in_(_USAGE_KINDS))
        .group_by(table.user_id)
    )
    return {uuid.UUID(str(uid)): (-micro(u), -micro(h)) for uid, u, h in rows}


# ---- figures ----


async def account_figures(session: AsyncSession, account: Account, cycle: CreditCycle) -> AccountFigures:
    return AccountFigures(
        limit=account_limit(account, cycle),
        added=cycle.added_credits,
        used=await ledger.used(session, cycle.id),
        held=await ledger.held(session, cycle.id),
        budgets=await budgets_total(session, account.id, cycle),
    )


def _group_figures(
    group: Group,
    budget: GroupBudget | None,
    cycle: CreditCycle,
    *,
    members: int,
    distributed: Decimal,
    used: Decimal,
) -> GroupFigures:
    return GroupFigures(
        group=group,
        members=members,
        monthly=budget.monthly if budget is not None else ZERO,
        extra=extra_now(budget.extra, budget.extra_cycle_id, cycle) if budget is not None else ZERO,
        distributed=distributed,
        used=used,
        auto_approve_limit=budget.auto_approve_limit if budget is not None else ZERO,
    )


async def group_figures(
    session: AsyncSession, account_id: uuid.UUID, group: Group, cycle: CreditCycle
) -> GroupFigures:
    """One group's figures, its budget read fresh."""
    return _group_figures(
        group,
        await budget_row(session, account_id, group.id),
        cycle,
        members=await users.group_size(session, account_id, group.id),
        distributed=await distributed(session, account_id, group.id, cycle),
        used=await ledger.used(session, cycle.id, group_id=group.id),
    )


async def every_group_figures(
    session: AsyncSession, account_id: uuid.UUID, cycle: CreditCycle
) -> list[GroupFigures]:
    """Every group's figures (the Default group first, then by name), in a few grouped queries."""
    budgets = {
        b.group_id: b
        for b in await session.scalars(select(GroupBudget).where(GroupBudget.account_id == account_id))
    }
    members = await users.group_sizes(session, account_id)
    # Distributed: every member's allocation counts (the same rule as the requests' group check).
    people, alloc = User.__table__.c, MemberAllocation.__table__.c
    monthly, extra = _distributed_sums(cycle)
    distributed_rows = await session.execute(
        select(people.group_id, monthly, extra)
        .select_from(MemberAllocation.__table__.join(User.__table__, people.id == alloc.user_id))
        .where(people.account_id == account_id)
        .group_by(people.group_id)
    )
    given = {group_id: micro(m) + micro(e) for group_id, m, e in distributed_rows.all()}
    entries = LedgerEntry.__table__.c
    used_rows = await session.execute(
        select(entries.group_id, func.sum(entries.amount, type_=BigInteger))
        .where(
            entries.account_id == account_id,
            entries.cycle_id == cycle.id,
            entries.kind == EntryKind.usage_debit.value,
            entries.group_id.is_not(None),
        )
        .group_by(entries.group_id)
    )
    used = {group_id: -micro(total) for group_id, total in used_rows.all()}
    return [
        _group_figures(
            group,
            budgets.get(group.id),
            cycle,
            members=members.get(group.id, 0),
            distributed=given.get(group.id, ZERO),
            used=used.get(group.id, ZERO),
        )
        for group in await groups.groups_of(session, account_id)
    ]


def member_figures_of(
    user: User, allocation: MemberAllocation | None, cycle: CreditCycle, *, used: Decimal, held: Decimal
) -> MemberFigures:
    return MemberFigures(
        user=user,
        monthly=allocation.monthly if allocation else ZERO,
        extra=extra_now(allocation.extra, allocation.extra_cycle_id, cycle) if allocation else ZERO,
        used=used,
        held=held,
        signup_shortfall=allocation.signup_shortfall if allocation else ZERO,
    )


async def member_figures(session: AsyncSession, user: User, cycle: CreditCycle) -> MemberFigures:
    return member_figures_of(
        user,
        await allocation_row(session, user),
        cycle,
        used=await ledger.used(session, cycle.id, user_id=user.id),
        held=await ledger.held(session, cycle.id, user_id=user.id),
    )
