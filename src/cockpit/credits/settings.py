"""Credit settings, cycles and the overview of an account's credits.

Settings: credits per cycle (the account's limit), the cycle cadence, the credit factor (credits
per $1; 0 disables tracking) and the credits a new user receives. A new limit applies to the
current cycle at once (used credits stay); a new cadence, like "Reset cycle now", starts a fresh
cycle immediately. Every edit locks the account row first, so two administrators' edits (or an
edit and a group budget change) are applied one after the other, each checked against the
other's result.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.credits import figures as credit_figures
from cockpit.credits import ledger
from cockpit.credits.amounts import MICRO, ZERO, check_credits, grouped, plain
from cockpit.credits.cycles import current_cycle, start_cycle
from cockpit.credits.figures import AccountFigures, GroupFigures, MemberFigures
from cockpit.credits.models import (
    Cadence,
    CreditCycle,
    CycleStart,
    EntryKind,
    LedgerEntry,
)
from cockpit.credits.thresholds import check_thresholds, thresholds_of
from cockpit.kit.errors import InvalidInput, NotFound
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.time import utcnow
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account
from cockpit.users import service as users

CADENCES = ", ".join(c.value for c in Cadence)


def check_cadence(value: str | Cadence) -> Cadence:
    try:
        return Cadence(value)
    except ValueError:
        message = f"must be one of {CADENCES}"
        raise InvalidInput(
            "invalid_cadence",
            f"The cycle_cadence {message}.",
            details=[{"field": "cycle_cadence", "message": message}],
        ) from None


# ---- settings ----


async def _account(session: AsyncSession, actor: Actor) -> Account:
    account = await session.get(Account, actor.account_id)
    if account is None:
        raise NotFound("account_not_found", "No such account.")
    return account


async def credit_settings(session: AsyncSession, actor: Actor) -> tuple[Account, CreditCycle]:
    """The account's credit settings and its current cycle (administrators)."""
    actor.require(Permission.credits_manage)
    account = await _account(session, actor)
    return account, await current_cycle(session, account)


def _state(account: Account) -> dict[str, Any]:
    return {
        "credits_per_cycle": plain(account.credits_per_cycle),
        "cycle_cadence": account.cycle_cadence,
        "credit_factor": plain(account.credit_factor),
        "signup_credits": plain(account.signup_credits),
        "budget_thresholds": thresholds_of(account),
    }


def set_cycle_credits(
    session: AsyncSession, account: Account, cycle: CreditCycle, credits: Decimal, *, actor_label: str
) -> None:
    """Make ``credits`` the credits per cycle of the account's current ``cycle`` at once, with the
    difference as an account-level ledger entry (so that the account's statement, which opened the
    cycle with the old amount, shows the change)."""
    change = credits - cycle.credits_per_cycle
    account.credits_per_cycle = cycle.credits_per_cycle = credits
    if change:
        ledger.append(
            session,
            account_id=account.id,
            cycle=cycle,
            kind=EntryKind.allocation_set,
            amount=change,
            description=f"Credits per cycle changed to {grouped(credits)}",
            actor_label=actor_label[:254],
        )


async def change_settings(
    session: AsyncSession,
    actor: Actor,
    *,
    credits_per_cycle: Decimal | None = None,
    cycle_cadence: str | Cadence | None = None,
    credit_factor: Decimal | None = None,
    signup_credits: Decimal | None = None,
    budget_thresholds: list[int] | None = None,
) -> tuple[Account, CreditCycle]:
    """Change any of the credit settings; returns the account and its (possibly new) current cycle.
    ``budget_thresholds``: the percentages announced once per cycle (``credits.thresholds``).

    Refused when the new credits per cycle would be below the sum of the groups' budgets in the
    cycle it applies to (a new cadence starts a cycle in which last cycle's extras no longer count).
    """
    actor.require(Permission.credits_manage)
    if credits_per_cycle is not None:
        check_credits(credits_per_cycle, field="credits_per_cycle")
    if credit_factor is not None:
        check_credits(credit_factor, field="credit_factor")
    if signup_credits is not None:
        check_credits(signup_credits, field="signup_credits")
    cadence = check_cadence(cycle_cadence) if cycle_cadence is not None else None
    thresholds = check_thresholds(budget_thresholds) if budget_thresholds is not None else None

    account = await lock_account(session, actor.account_id)
    now = utcnow()
    cycle = await current_cycle(session, account, now=now)
    cadence_changes = cadence is not None and cadence.value != account.cycle_cadence
    if credits_per_cycle is not None and credits_per_cycle != account.credits_per_cycle:
        budgets = await credit_figures.budgets_total(session, account.id, None if cadence_changes else cycle)
        # Credits added to the current cycle (top-ups) count with it; a new cadence starts without them.
        added = ZERO if cadence_changes else cycle.added_credits
        if credits_per_cycle + added < budgets:
            message = (
                f"Group budgets total {grouped(budgets)} credits; credits per cycle cannot be less "
                f"(short by {grouped(budgets - credits_per_cycle - added)})."
            )
            raise InvalidInput(
                "credits_below_group_budgets",
                message,
                details=[{"field": "credits_per_cycle", "message": message}],
            )

    before = _state(account)
    if credits_per_cycle is not None:
        if not cadence_changes:  # takes effect for the current cycle at once (a new cycle copies it)
            set_cycle_credits(session, account, cycle, credits_per_cycle, actor_label=actor.label)
        account.credits_per_cycle = credits_per_cycle
    if credit_factor is not None:
        account.credit_factor = credit_factor
    if signup_credits is not None:
        account.signup_credits = signup_credits
    if thresholds is not None:
        account.budget_thresholds = thresholds
    if cadence is not None and cadence_changes:
        account.cycle_cadence = cadence.value
        cycle = await start_cycle(
            session, account, started_by=CycleStart.cadence_changed, at=now, previous=cycle,
            actor_label=actor.label, actor_id=actor.user_id,
        )  # fmt: skip
    await audit.record_changes(
        session, actor, "credits.settings_updated", target=Target("account", account.id, account.name),
        before=before, after=_state(account),
    )  # fmt: skip
    await session.flush()
    return account, cycle


async def reset_cycle(session: AsyncSession, actor: Actor) -> CreditCycle:
    """Start a fresh cycle now: used credits count from zero, last cycle's extra credits expire."""
    actor.require(Permission.credits_manage)
    account = await lock_account(session, actor.account_id)
    now = utcnow()
    previous = await current_cycle(session, account, now=now)
    before = {"seq": previous.seq, "starts_at": previous.starts_at, "ends_at": previous.ends_at}
    cycle = await start_cycle(
        session,
        account,
        started_by=CycleStart.reset,
        at=now,
        previous=previous,
        actor_label=actor.label,
        actor_id=actor.user_id,
    )
    await audit.record(
        session, actor, "credits.cycle_reset", target=Target("credit_cycle", cycle.id, f"Cycle {cycle.seq}"),
        before=before, after={"seq": cycle.seq, "starts_at": cycle.starts_at, "ends_at": cycle.ends_at},
    )  # fmt: skip
    await session.flush()
    return cycle


# ---- cycles ----


@dataclass(frozen=True)
class CycleRow:
    cycle: CreditCycle
    used: Decimal


async def list_cycles(session: AsyncSession, actor: Actor, params: PageParams) -> Page[CycleRow]:
    """Past and current cycles, newest first, each with the credits its gateway calls used."""
    actor.require(Permission.credits_manage)
    await current_cycle(session, await _account(session, actor))
    page = await paginate(
        session,
        select(CreditCycle)
        .where(CreditCycle.account_id == actor.account_id)
        .order_by(CreditCycle.seq.desc()),
        params,
    )
    ids = [cycle.id for cycle in page.items]
    used: dict[uuid.UUID, Decimal] = {}
    if ids:
        # One query for the page (the same sum as ``ledger.used``, on the account/cycle index).
        table = LedgerEntry.__table__.c
        rows = await session.execute(
            select(table.cycle_id, func.sum(table.amount, type_=BigInteger))
            .where(
                table.account_id == actor.account_id,
                table.cycle_id.in_(ids),
                table.kind == EntryKind.usage_debit.value,
            )
            .group_by(table.cycle_id)
        )
        used = {cycle_id: -Decimal(int(total or 0)) / MICRO for cycle_id, total in rows.all()}
    return Page(
        items=[CycleRow(cycle, used.get(cycle.id, ZERO)) for cycle in page.items],
        total=page.total,
        page=page.page,
        per_page=page.per_page,
    )


# ---- overview ----


@dataclass(frozen=True)
class Overview:
    now: datetime
    cycle: CreditCycle
    credit_factor: Decimal
    me: MemberFigures | None
    account: AccountFigures | None  # administrators only
    groups: list[GroupFigures] | None  # administrators only

    @property
    def tracking_enabled(self) -> bool:
        return self.credit_factor > 0

    @property
    def seconds_left(self) -> int:
        return max(0, int((self.cycle.ends_at - self.now).total_seconds()))


async def overview(session: AsyncSession, actor: Actor) -> Overview:
    """The current cycle with the account's and every group's figures (administrators), or the
    caller's own allowance, usage and remaining credits (members)."""
    actor.require(Permission.credits_own)
    account = await _account(session, actor)
    now = utcnow()
    cycle = await current_cycle(session, account, now=now)
    me = None
    if actor.user_id is not None:
        user = await users.get_user(session, account.id, actor.user_id)
        if user is not None:
            me = await credit_figures.member_figures(session, user, cycle)
    account_figures = groups = None
    if actor.can(Permission.credits_manage):
        account_figures = await credit_figures.account_figures(session, account, cycle)
        groups = await credit_figures.every_group_figures(session, account.id, cycle)
    return Overview(
        now=now,
        cycle=cycle,
        credit_factor=account.credit_factor,
        me=me,
        account=account_figures,
        groups=groups,
    )


async def my_credits(session: AsyncSession, actor: Actor) -> MemberFigures | None:
    """The caller's own allowance and usage this cycle (None without credit tracking, or for a caller
    who is not a person), for the low-credits banner of their pages."""
    if actor.user_id is None or not actor.can(Permission.credits_own):
        return None
    account = await _account(session, actor)
    if account.credit_factor <= 0:
        return None
    user = await users.get_user(session, account.id, actor.user_id)
    if user is None:
        return None
    return await credit_figures.member_figures(session, user, await current_cycle(session, account))
