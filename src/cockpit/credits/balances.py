"""Running totals of a cycle's used and held credits per account, group and member.

Every ledger entry that moves used or held credits (usage debits, holds, releases) changes these
totals in the same transaction, so the gateway checks a budget by reading three rows instead of
summing a cycle's ledger. ``reconcile`` recomputes them from the ledger: they must always agree.
Rows are changed in one order (cycle, scope, id), so concurrent transactions cannot deadlock on them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import BigInteger, Table, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.models import BalanceScope, CreditBalance, EntryKind, LedgerEntry
from cockpit.kit.db import dialect_name

ZERO = Decimal(0)
_TABLE = cast(Table, CreditBalance.__table__)
Key = tuple[uuid.UUID, str, uuid.UUID]  # (cycle, scope, scope id)


@dataclass(frozen=True, slots=True)
class Totals:
    used: Decimal = ZERO
    held: Decimal = ZERO


class Deltas:
    """Changes to apply to the totals of one or more cycles."""

    def __init__(self) -> None:
        self.changes: dict[Key, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])

    def add(
        self,
        cycle_id: uuid.UUID,
        *,
        account_id: uuid.UUID,
        group_id: uuid.UUID | None,
        user_id: uuid.UUID | None,
        used: Decimal = ZERO,
        held: Decimal = ZERO,
    ) -> None:
        """A movement of a member's credits counts for the member, their group and the account."""
        for scope, scope_id in (
            (BalanceScope.account, account_id),
            (BalanceScope.group, group_id),
            (BalanceScope.user, user_id),
        ):
            if scope_id is not None:
                change = self.changes[(cycle_id, scope.value, scope_id)]
                change[0] += used
                change[1] += held

    def __bool__(self) -> bool:
        return any(used or held for used, held in self.changes.values())


async def apply(session: AsyncSession, deltas: Deltas) -> None:
    rows = [
        {"cycle_id": key[0], "scope": key[1], "scope_id": key[2], "used": used, "held": held}
        for key, (used, held) in sorted(
            deltas.changes.items(), key=lambda item: (str(item[0][0]), item[0][1], str(item[0][2]))
        )
        if used or held
    ]
    if not rows:
        return
    dialect = dialect_name(session)
    insert: Any = postgresql.insert(_TABLE) if dialect == "postgresql" else sqlite.insert(_TABLE)
    stmt = insert.on_conflict_do_update(
        index_elements=["cycle_id", "scope", "scope_id"],
        set_={"used": _TABLE.c.used + insert.excluded.used, "held": _TABLE.c.held + insert.excluded.held},
    )
    for row in rows:  # one at a time, in key order (lock order)
        await session.execute(stmt, row)


async def totals(
    session: AsyncSession,
    cycle_id: uuid.UUID,
    *,
    account_id: uuid.UUID,
    group_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
) -> dict[BalanceScope, Totals]:
    """The totals of a member, their group and the account in one read (zero where none yet)."""
    wanted = [
        (BalanceScope.account, account_id),
        (BalanceScope.group, group_id),
        (BalanceScope.user, user_id),
    ]
    conditions = [
        (CreditBalance.scope == scope.value) & (CreditBalance.scope_id == scope_id)
        for scope, scope_id in wanted
        if scope_id is not None
    ]
    rows = await session.execute(
        select(CreditBalance.scope, CreditBalance.used, CreditBalance.held).where(
            CreditBalance.cycle_id == cycle_id, or_(*conditions)
        )
    )
    found = {BalanceScope(scope): Totals(used, held) for scope, used, held in rows}
    return {scope: found.get(scope, Totals()) for scope, _ in wanted}


_KINDS = (EntryKind.usage_debit, EntryKind.hold, EntryKind.release)


async def reconcile(session: AsyncSession, cycle_id: uuid.UUID) -> list[str]:
    """Differences between a cycle's totals and its ledger (an empty list when they agree)."""
    amount = func.sum(LedgerEntry.__table__.c.amount, type_=BigInteger)
    rows = await session.execute(
        select(LedgerEntry.kind, LedgerEntry.account_id, LedgerEntry.group_id, LedgerEntry.user_id, amount)
        .where(LedgerEntry.cycle_id == cycle_id, LedgerEntry.kind.in_(_KINDS))
        .group_by(LedgerEntry.kind, LedgerEntry.account_id, LedgerEntry.group_id, LedgerEntry.user_id)
    )
    expected = Deltas()
    for kind, account_id, group_id, user_id, micro in rows:
        value = Decimal(int(micro or 0)) / Decimal(1_000_000)
        if kind == EntryKind.usage_debit:
            expected.add(cycle_id, account_id=account_id, group_id=group_id, user_id=user_id, used=-value)
        else:
            expected.add(cycle_id, account_id=account_id, group_id=group_id, user_id=user_id, held=-value)
    stored = {
        (row.cycle_id, row.scope, row.scope_id): (row.used, row.held)
        for row in await session.scalars(select(CreditBalance).where(CreditBalance.cycle_id == cycle_id))
    }
    problems = []
    for key in sorted(set(expected.changes) | set(stored), key=str):
        want = tuple(expected.changes.get(key, [ZERO, ZERO]))
        have = stored.get(key, (ZERO, ZERO))
        if want != have:
            problems.append(f"{key[1]} {key[2]}: ledger used/held {want}, totals {have}")
    return problems
