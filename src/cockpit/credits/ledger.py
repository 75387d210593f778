"""The credit ledger: every movement is one appended row; balances are sums over a cycle's rows."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.models import CreditCycle, EntryKind, LedgerEntry
from cockpit.kit.time import utcnow

ZERO = Decimal(0)


def append(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    cycle: CreditCycle | None,
    kind: EntryKind,
    amount: Decimal,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    description: str = "",
    actor_label: str | None = None,
    **details: Any,
) -> LedgerEntry:
    """Add one entry to the session (written with the transaction that caused it)."""
    entry = LedgerEntry(
        id=uuid.uuid4(),
        account_id=account_id,
        cycle_id=cycle.id if cycle is not None else None,
        created_at=utcnow(),
        kind=kind,
        amount=amount,
        user_id=user_id,
        group_id=group_id,
        description=description[:300],
        actor_label=actor_label,
        **details,
    )
    session.add(entry)
    return entry


async def _sum(
    session: AsyncSession,
    cycle_id: uuid.UUID,
    kinds: tuple[EntryKind, ...],
    user_id: uuid.UUID | None,
    group_id: uuid.UUID | None,
) -> Decimal:
    """The sum of a cycle's entries of these kinds: a member's, a group's, or the whole account's."""
    # SUM over the raw integer micro-credits (typed BigInteger so that no conversion happens twice).
    stmt = select(func.coalesce(func.sum(LedgerEntry.__table__.c.amount, type_=BigInteger), 0)).where(
        # The cycle's account too, so that the (account_id, cycle_id, created_at) index serves it.
        LedgerEntry.account_id
        == select(CreditCycle.account_id).where(CreditCycle.id == cycle_id).scalar_subquery(),
        LedgerEntry.cycle_id == cycle_id,
        LedgerEntry.kind.in_(kinds),
    )
    if user_id is not None:
        stmt = stmt.where(LedgerEntry.user_id == user_id)
    if group_id is not None:
        stmt = stmt.where(LedgerEntry.group_id == group_id)
    total = await session.scalar(stmt)
    return Decimal(int(total or 0)) / Decimal(1_000_000)


async def used(
    session: AsyncSession,
    cycle_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
) -> Decimal:
    """Credits spent by gateway calls in a cycle: a member's, a group's members', or the account's."""
    return -(await _sum(session, cycle_id, (EntryKind.usage_debit,), user_id, group_id))


async def held(
    session: AsyncSession,
    cycle_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
) -> Decimal:
    """Credits reserved by calls in flight (holds not yet released)."""
    return -(await _sum(session, cycle_id, (EntryKind.hold, EntryKind.release), user_id, group_id))
