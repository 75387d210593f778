"""Budget thresholds: the account, each group and each member hear once per cycle when they have
used a set share of their credits (``budget.threshold_crossed``; the account's ``budget_thresholds``,
by default 50, 80 and 100 %).

Detected where usage is debited (``usage.debit_usage``), in the same transaction, for the scopes the
debit touched: one query reads their used credits (the running totals) and budgets. A threshold is
announced when used ≥ threshold % of the budget and it has not been announced this cycle: the event's
``dedupe_key`` (cycle, scope, id, threshold) is unique per account, so however many batches cross it
at once, one event is written (a second insert of the key is a no-op). A budget cut below what is used
announces the thresholds now passed at the next debit; a scope without a budget has no thresholds.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.amounts import ZERO
from cockpit.credits.cycles import extra_now
from cockpit.credits.models import BalanceScope, CreditBalance, CreditCycle, GroupBudget, MemberAllocation
from cockpit.events.models import PlatformEvent
from cockpit.events.service import emit
from cockpit.groups import service as groups
from cockpit.kit.errors import InvalidInput
from cockpit.kit.money import credits_text
from cockpit.tenancy.models import Account
from cockpit.users.models import User

log = logging.getLogger(__name__)

DEFAULT = (50, 80, 100)
MAX_THRESHOLDS = 10
LOWEST, HIGHEST = 1, 1000
EVENT = "budget.threshold_crossed"
# How a scope is named in the event (the balances say "user").
SCOPE_WORDS = {BalanceScope.account.value: "account", BalanceScope.group.value: "group", "user": "member"}


def _invalid(problem: str) -> InvalidInput:
    return InvalidInput(
        "invalid_budget_thresholds",
        f"The budget thresholds {problem}.",
        details=[{"field": "budget_thresholds", "message": problem}],
    )


def check_thresholds(values: object) -> list[int]:
    """Percentages of a cycle's credits: whole numbers from 1 to 1,000, at most 10; returned sorted,
    each once. Anything else (text, fractions, booleans, too many) is refused with InvalidInput."""
    if not isinstance(values, list | tuple):
        raise _invalid("must be a list of percentages")
    if len(values) > MAX_THRESHOLDS:
        raise _invalid(f"are at most {MAX_THRESHOLDS}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid("must be whole numbers")
        if not LOWEST <= value <= HIGHEST:
            raise _invalid(f"must each be from {LOWEST} to {HIGHEST:,}")
    return sorted(set(values))


def parse_thresholds(text: str) -> list[int]:
    """The thresholds typed in a form: "50, 80, 100" (commas, spaces, an optional % sign); empty for none."""
    parts = [p for p in re.split(r"[,;\s]+", text.replace("%", " ").strip()) if p]
    if len(parts) > MAX_THRESHOLDS:
        raise _invalid(f"are at most {MAX_THRESHOLDS}")
    if any(not (p.isascii() and p.isdigit() and len(p) <= 4) for p in parts):
        raise _invalid(f"must be whole numbers from {LOWEST} to {HIGHEST:,}, separated by commas")
    return check_thresholds([int(p) for p in parts])


def thresholds_of(account: Account) -> list[int]:
    """The account's thresholds as stored (a row written by hand that is not a list: the defaults)."""
    stored = account.budget_thresholds
    if not isinstance(stored, list):
        return list(DEFAULT)
    return sorted({v for v in stored if isinstance(v, int) and not isinstance(v, bool) and v > 0})


@dataclass(frozen=True)
class Crossing:
    scope: str  # account, group or user (the balances' scope)
    scope_id: uuid.UUID
    threshold: int
    used: Decimal
    budget: Decimal

    def key(self, cycle_id: uuid.UUID) -> str:
        return f"budget:{cycle_id}:{SCOPE_WORDS[self.scope]}:{self.scope_id}:{self.threshold}"


async def _figures(
    session: AsyncSession,
    account: Account,
    cycle: CreditCycle,
    group_ids: Collection[uuid.UUID],
    user_ids: Collection[uuid.UUID],
) -> list[tuple[str, uuid.UUID, Decimal, Decimal]]:
    """(scope, id, used, budget) of the account and of these groups and members this cycle: one query
    over the running totals, each joined to its budget row."""
    b = CreditBalance
    wanted: list[Any] = [and_(b.scope == BalanceScope.account.value, b.scope_id == account.id)]
    if group_ids:
        wanted.append(and_(b.scope == BalanceScope.group.value, b.scope_id.in_(list(group_ids))))
    if user_ids:
        wanted.append(and_(b.scope == BalanceScope.user.value, b.scope_id.in_(list(user_ids))))
    g, m = GroupBudget, MemberAllocation
    rows = await session.execute(
        select(
            b.scope,
            b.scope_id,
            b.used,
            g.monthly,
            g.extra,
            g.extra_cycle_id,
            m.monthly,
            m.extra,
            m.extra_cycle_id,
        )
        .outerjoin(
            g, and_(b.scope == BalanceScope.group.value, g.group_id == b.scope_id, g.account_id == account.id)
        )
        .outerjoin(
            m, and_(b.scope == BalanceScope.user.value, m.user_id == b.scope_id, m.account_id == account.id)
        )
        .where(b.cycle_id == cycle.id, or_(*wanted))
    )
    figures = []
    for scope, scope_id, used, g_monthly, g_extra, g_cycle, m_monthly, m_extra, m_cycle in rows.all():
        if scope == BalanceScope.account.value:
            budget = cycle.credits_per_cycle + cycle.added_credits
        elif scope == BalanceScope.group.value:
            budget = (g_monthly or ZERO) + extra_now(g_extra or ZERO, g_cycle, cycle)
        else:
            budget = (m_monthly or ZERO) + extra_now(m_extra or ZERO, m_cycle, cycle)
        figures.append((scope, scope_id, used, budget))
    return figures


def crossings(
    figures: Sequence[tuple[str, uuid.UUID, Decimal, Decimal]], thresholds: Sequence[int]
) -> list[Crossing]:
    """Every threshold each scope has reached (used ≥ threshold % of a budget above zero)."""
    return [
        Crossing(scope, scope_id, pct, used, budget)
        for scope, scope_id, used, budget in figures
        if budget > 0
        for pct in thresholds
        if used * 100 >= budget * pct
    ]


async def detect(
    session: AsyncSession,
    account: Account,
    cycle: CreditCycle,
    members: dict[uuid.UUID, uuid.UUID | None],
    group_ids: Collection[uuid.UUID],
) -> int:
    """Announce the thresholds the account, these groups and these members (user id → their group)
    reached in ``cycle`` and that were not announced yet; returns how many events were written.

    Runs in the debit's transaction and never undoes it: the events are written under a savepoint,
    a key announced meanwhile by another transaction is skipped, and a failure is logged."""
    thresholds = thresholds_of(account)
    if account.credit_factor <= 0 or not thresholds:
        return 0
    reached = crossings(await _figures(session, account, cycle, group_ids, members), thresholds)
    if not reached:
        return 0
    keys = {c.key(cycle.id): c for c in reached}
    announced = await session.scalars(
        select(PlatformEvent.dedupe_key).where(
            PlatformEvent.account_id == account.id, PlatformEvent.dedupe_key.in_(list(keys))
        )
    )
    for key in announced.all():
        keys.pop(str(key), None)
    if not keys:
        return 0
    written = 0
    try:
        async with session.begin_nested():
            names = await _names(session, account, [keys[k] for k in keys])
            for key in sorted(keys):  # one order for every writer: concurrent inserts of keys cannot deadlock
                c = keys[key]
                person = c.scope_id if c.scope == BalanceScope.user.value else None
                group = c.scope_id if c.scope == BalanceScope.group.value else members.get(c.scope_id)
                data = {
                    "scope": SCOPE_WORDS[c.scope],
                    "scope_name": names.get(c.scope_id, "Deleted"),
                    "threshold": c.threshold,
                    "used": credits_text(c.used),
                    "budget": credits_text(c.budget),
                }
                event = await emit(
                    session, account.id, EVENT, data, person_id=person, group_id=group, dedupe_key=key
                )
                written += event is not None
    except Exception:  # a notification must never cost a debit: the debit commits without it
        log.exception("budget thresholds of account %s could not be announced", account.id)
        return 0
    return written


async def _names(
    session: AsyncSession, account: Account, reached: Sequence[Crossing]
) -> dict[uuid.UUID, str]:
    group_ids = {c.scope_id for c in reached if c.scope == BalanceScope.group.value}
    user_ids = {c.scope_id for c in reached if c.scope == BalanceScope.user.value}
    names: dict[uuid.UUID, str] = {account.id: account.name}
    if group_ids:
        names |= await groups.names_of(session, account.id, group_ids)
    if user_ids:
        people = await session.execute(
            select(User.id, User.name, User.email).where(User.account_id == account.id, User.id.in_(user_ids))
        )
        names |= {user_id: name or email for user_id, name, email in people.all()}
    return names
