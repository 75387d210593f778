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
    session: AsyncSession, cycle_id: uuid.UUID, kinds: tuple[EntryKind, ...], **where: Any
) -> Decimal:
    # SUM over the raw integer micro-credits (typed BigInteger so that no conversion happens twice).
    stmt = select(func.coalesce(func.sum(LedgerEntry.__table__.c.amount, type_=BigInteger), 0)).where(
        # The cycle's account too, so that the (account_id, cycle_id, created_at) index serves it.
        LedgerEntry.account_id
        == select(CreditCycle.account_id).where(CreditCycle.id == cycle_id).scalar_subquery(),
        LedgerEntry.cycle_id == cycle_id,
        LedgerEntry.kind.in_(kinds),
    )
    for name, value in where.items():
        stmt = stmt.where(getattr(LedgerEntry, name) == value)
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
    where: dict[str, Any] = {}
    if user_id is not None:
        where["user_id"] = user_id
    if group_id is not None:
        where["group_id"] = group_id
    return -(await _sum(session, cycle_id, (EntryKind.usage_debit,), **where))


async def held(
    session: AsyncSession,
    cycle_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
) -> Decimal:
    """Credits reserved by calls in flight (holds not yet released)."""
    where: dict[str, Any] = {}
    if user_id is not None:
        where["user_id"] = user_id
    if group_id is not None:
        where["group_id"] = group_id
    return -(await _sum(session, cycle_id, (EntryKind.hold, EntryKind.release), **where))
