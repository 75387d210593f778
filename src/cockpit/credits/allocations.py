"""Allocations: a group's budget (from the account's credits per cycle) and its members' allowances.

A group's budget is its monthly allocation plus its extra credits of the current cycle; what it
has distributed is the sum of its members' monthly plus current-cycle extra (members are the users
whose ``group_id`` is the group now: a user who moves takes their allocation along). Two rules hold
after every edit: the groups' budgets together stay within the account's credits per cycle, and no
group distributes more than its budget. Every edit locks the account row first
(``lock_account``), so concurrent edits (and credit request approvals) are checked one at a time.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits import figures as credit_figures
from cockpit.credits import ledger
from cockpit.credits.amounts import ZERO, check_credits, grouped, plain
from cockpit.credits.cycles import account_limit, current_cycle, extra_now
from cockpit.credits.figures import GroupFigures, MemberFigures
from cockpit.credits.models import CreditCycle, EntryKind, GroupBudget, MemberAllocation
from cockpit.groups.models import Group
from cockpit.kit.errors import Conflict, NotFound
from cockpit.kit.pagination import Page, PageParams
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account
from cockpit.users.models import User

# Far above any budget; keeps micro-credits (and sums of them) within a BigInteger.


def _ledger_changes(
    session: AsyncSession,
    actor: Actor,
    account_id: uuid.UUID,
    cycle: CreditCycle,
    label: str,
    monthly: tuple[Decimal, Decimal],
    extra: tuple[Decimal, Decimal],
    *,
    user_id: uuid.UUID | None,
    group_id: uuid.UUID | None,
) -> None:
    """Ledger entries for a changed monthly allocation and changed extra credits (old, new)."""
    for kind, (old, new), what in (
        (EntryKind.allocation_set, monthly, "monthly allocation"),
        (EntryKind.extra_granted, extra, "extra credits this cycle"),
    ):
        if new != old:
            ledger.append(
                session, account_id=account_id, cycle=cycle, kind=kind, amount=new - old, user_id=user_id,
                group_id=group_id, actor_label=actor.label,
                description=f"{label}: {what} {grouped(old)} → {grouped(new)}",
            )  # fmt: skip


# ---- access ----


async def _account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    account = await session.get(Account, account_id)
    assert account is not None  # the actor's account exists while they are signed in
    return account


async def _group(session: AsyncSession, actor: Actor, group_id: uuid.UUID) -> Group:
    group = await session.scalar(
        select(Group).where(Group.account_id == actor.account_id, Group.id == group_id)
    )
    if group is None:
        raise NotFound("group_not_found", "No such group.")
    return group


async def access_member(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    """A user whose allocation the actor may see: anyone in the account with credits:manage, oneself
    with credits:own; anyone else is NotFound (members do not learn who exists)."""
    if not actor.can(Permission.credits_manage):
        actor.require(Permission.credits_own)
        if actor.user_id != user_id:
            raise NotFound("user_not_found", "No such user.")
    user = await session.scalar(select(User).where(User.account_id == actor.account_id, User.id == user_id))
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    return user


# ---- groups ----


async def group_allocation(session: AsyncSession, actor: Actor, group_id: uuid.UUID) -> GroupFigures:
    actor.require(Permission.credits_manage)
    group = await _group(session, actor, group_id)
    cycle = await current_cycle(session, await _account(session, actor.account_id))
    return await credit_figures.group_figures(session, actor.account_id, group, cycle)


async def set_group_allocation(
    session: AsyncSession,
    actor: Actor,
    group_id: uuid.UUID,
    *,
    monthly: Decimal | None = None,
    extra: Decimal | None = None,
    auto_approve_limit: Decimal | None = None,
) -> GroupFigures:
    """Set a group's monthly allocation, this cycle's extra credits and auto-approve limit (None: keep).

    Refused (Conflict) when the groups' budgets would exceed what the account may spend this cycle
    (``account_limit``), or when the group's budget would drop below what it has distributed to its
    members.
    """
    actor.require(Permission.credits_manage)
    monthly = None if monthly is None else check_credits(monthly, field="monthly")
    extra = None if extra is None else check_credits(extra, field="extra")
    if auto_approve_limit is not None:
        auto_approve_limit = check_credits(auto_approve_limit, field="auto_approve_limit")
    account = await lock_account(session, actor.account_id)
    group = await _group(session, actor, group_id)
    cycle = await current_cycle(session, account)
    budget = await credit_figures.budget_row(session, account.id, group.id)
    if budget is None:
        budget = GroupBudget(
            group_id=group.id, account_id=account.id, monthly=ZERO, extra=ZERO, auto_approve_limit=ZERO
        )
        session.add(budget)
    old_monthly = budget.monthly
    old_extra = extra_now(budget.extra, budget.extra_cycle_id, cycle)
    old_limit = budget.auto_approve_limit
    new_monthly = old_monthly if monthly is None else monthly
    new_extra = old_extra if extra is None else extra
    old_budget, new_budget = old_monthly + old_extra, new_monthly + new_extra

    if new_budget > old_budget:
        # Only a raise can break the account limit (lowering a budget is always allowed, also when
        # the account's limit was lowered below the groups' total earlier).
        total = await credit_figures.budgets_total(session, account.id, cycle) - old_budget + new_budget
        limit = account_limit(account, cycle)
        if total > limit:
            whose = (
                f"{grouped(limit)} credits this cycle ({grouped(cycle.added_credits)} of them added)"
                if cycle.added_credits
                else f"{grouped(limit)} credits per cycle"
            )
            raise Conflict(
                "account_budget_exceeded",
                f"The groups' budgets would total {grouped(total)} credits, which exceeds the "
                f"account's {whose} by {grouped(total - limit)}.",
            )
    elif new_budget < old_budget:
        given = await credit_figures.distributed(session, account.id, group.id, cycle)
        if new_budget < given:
            raise Conflict(
                "budget_below_distributed",
                f"{group.name} has already distributed {grouped(given)} credits to its members; "
                f"a budget of {grouped(new_budget)} is {grouped(given - new_budget)} below that.",
            )

    budget.monthly = new_monthly
    budget.extra, budget.extra_cycle_id = new_extra, cycle.id
    if auto_approve_limit is not None:
        budget.auto_approve_limit = auto_approve_limit
    _ledger_changes(session, actor, account.id, cycle, group.name, (old_monthly, new_monthly),
                    (old_extra, new_extra), user_id=None, group_id=group.id)  # fmt: skip
    await audit.record_changes(
        session,
        actor,
        "credits.group_allocation_updated",
        target=Target("group", group.id, group.name),
        before={
            "monthly": plain(old_monthly),
            "extra": plain(old_extra),
            "auto_approve_limit": plain(old_limit),
        },
        after={
            "monthly": plain(new_monthly),
            "extra": plain(new_extra),
            "auto_approve_limit": plain(budget.auto_approve_limit),
        },
    )
    await session.flush()
    return await credit_figures.group_figures(session, account.id, group, cycle)


# ---- members ----


async def member_allocation(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> MemberFigures:
    user = await access_member(session, actor, user_id)
    cycle = await current_cycle(session, await _account(session, actor.account_id))
    return await credit_figures.member_figures(session, user, cycle)


async def _new_allocation(session: AsyncSession, user: User) -> MemberAllocation:
    allocation = MemberAllocation(
        user_id=user.id, account_id=user.account_id, monthly=ZERO, extra=ZERO, signup_shortfall=ZERO
    )
    session.add(allocation)
    return allocation


async def set_member_allocation(
    session: AsyncSession,
    actor: Actor,
    user_id: uuid.UUID,
    *,
    monthly: Decimal | None = None,
    extra: Decimal | None = None,
) -> MemberFigures:
    """Set a member's monthly allocation and this cycle's extra credits (None: keep), drawn from their
    group's budget. Refused (Conflict) when the group would distribute more than its budget.

    Raising the extra credits covers a signup shortfall by as much as they were raised.
    """
    actor.require(Permission.credits_manage)
    monthly = None if monthly is None else check_credits(monthly, field="monthly")
    extra = None if extra is None else check_credits(extra, field="extra")
    account = await lock_account(session, actor.account_id)
    user = await access_member(session, actor, user_id)
    group = await _group(session, actor, user.group_id)
    cycle = await current_cycle(session, account)
    allocation = await credit_figures.allocation_row(session, user) or await _new_allocation(session, user)
    old_monthly = allocation.monthly
    old_extra = extra_now(allocation.extra, allocation.extra_cycle_id, cycle)
    old_shortfall = allocation.signup_shortfall
    new_monthly = old_monthly if monthly is None else monthly
    new_extra = old_extra if extra is None else extra
    change = (new_monthly + new_extra) - (old_monthly + old_extra)

    if change > 0:
        figures = await credit_figures.group_figures(session, account.id, group, cycle)
        after = figures.distributed + change
        if after > figures.budget:
            raise Conflict(
                "group_budget_exceeded",
                f"{group.name} would distribute {grouped(after)} credits, which exceeds its budget "
                f"of {grouped(figures.budget)} by {grouped(after - figures.budget)}.",
            )

    allocation.monthly = new_monthly
    allocation.extra, allocation.extra_cycle_id = new_extra, cycle.id
    if new_extra > old_extra and old_shortfall > 0:
        allocation.signup_shortfall = max(ZERO, old_shortfall - (new_extra - old_extra))
    _ledger_changes(session, actor, account.id, cycle, user.email, (old_monthly, new_monthly),
                    (old_extra, new_extra), user_id=user.id, group_id=user.group_id)  # fmt: skip
    await audit.record_changes(
        session,
        actor,
        "credits.member_allocation_updated",
        target=Target("user", user.id, user.email),
        before={
            "monthly": plain(old_monthly),
            "extra": plain(old_extra),
            "signup_shortfall": plain(old_shortfall),
        },
        after={
            "monthly": plain(new_monthly),
            "extra": plain(new_extra),
            "signup_shortfall": plain(allocation.signup_shortfall),
        },
    )
    await session.flush()
    return await credit_figures.member_figures(session, user, cycle)


async def grant_signup_credits(session: AsyncSession, user: User) -> None:
    """Give a user who just joined the account's signup credits as extra credits of the current cycle,
    drawn from their group's available credits. What the group cannot cover is recorded as the
    allocation's ``signup_shortfall`` (flagged on the Allocations tab). Nothing when signup credits are 0.
    """
    account = await lock_account(session, user.account_id)
    signup = account.signup_credits
    if signup <= 0:
        return
    await session.flush()  # the user row (just added) must exist for the allocation row and the sums
    cycle = await current_cycle(session, account)
    group = await session.get(Group, user.group_id)
    assert group is not None
    figures = await credit_figures.group_figures(session, account.id, group, cycle)
    granted = min(signup, max(figures.available, ZERO))
    shortfall = signup - granted
    allocation = await credit_figures.allocation_row(session, user) or await _new_allocation(session, user)
    before = extra_now(allocation.extra, allocation.extra_cycle_id, cycle)
    allocation.extra, allocation.extra_cycle_id = before + granted, cycle.id
    allocation.signup_shortfall = shortfall
    system = Actor.system(account.id, "system")
    if granted > 0:
        note = f" ({grouped(shortfall)} short: {group.name} could not cover more)" if shortfall else ""
        ledger.append(
            session, account_id=account.id, cycle=cycle, kind=EntryKind.signup_grant, amount=granted,
            user_id=user.id, group_id=group.id, actor_label=system.label,
            description=f"Signup credits for {user.email}{note}",
        )  # fmt: skip
    await audit.record(
        session,
        system,
        "credits.signup_granted",
        target=Target("user", user.id, user.email),
        after={
            "signup_credits": plain(signup),
            "granted": plain(granted),
            "shortfall": plain(shortfall),
            "group": group.name,
        },
    )
    await session.flush()


# ---- the members table of a group ----


async def group_members(
    session: AsyncSession, actor: Actor, group_id: uuid.UUID, params: PageParams, *, q: str = ""
) -> Page[MemberFigures]:
    """The group's members (deactivated ones too) with their allocation and usage, by name; ``q``
    searches name and e-mail."""
    actor.require(Permission.credits_manage)
    group = await _group(session, actor, group_id)
    cycle = await current_cycle(session, await _account(session, actor.account_id))
    stmt = (
        select(User, MemberAllocation)
        .outerjoin(MemberAllocation, MemberAllocation.user_id == User.id)
        .where(User.account_id == actor.account_id, User.group_id == group.id)
    )
    text = q.strip().lower()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(func.lower(User.name).like(pattern, escape="\\"), User.email.like(pattern, escape="\\"))
        )
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = (
        await session.execute(
            stmt.order_by(func.lower(User.name), User.email).limit(params.per_page).offset(params.offset)
        )
    ).all()
    usage = await credit_figures.usage_by_user(session, cycle, [user.id for user, _ in rows])
    items = []
    for user, allocation in rows:
        used, held = usage.get(user.id, (ZERO, ZERO))
        items.append(credit_figures.member_figures_of(user, allocation, cycle, used=used, held=held))
    return Page(items=items, total=total or 0, page=params.page, per_page=params.per_page)
