"""Credits held in a lease go back: a ``release`` ledger entry and the running totals, shared by the
credit keeper (what a lease gives back) and the usage writer (what a finished call did not use)."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits import ledger
from cockpit.credits.balances import Deltas
from cockpit.credits.models import CreditCycle, CreditLease, EntryKind

log = logging.getLogger("cockpit.credits")
ZERO = Decimal(0)


async def append_release(
    session: AsyncSession,
    deltas: Deltas,
    *,
    account_id: uuid.UUID,
    cycle_id: uuid.UUID,
    user_id: uuid.UUID,
    group_id: uuid.UUID | None,
    amount: Decimal,
    why: str,
) -> None:
    """A ``release`` ledger entry, and the held credits it takes off the running totals (``deltas``)."""
    ledger.append(
        session,
        account_id=account_id,
        cycle=await session.get(CreditCycle, cycle_id),
        kind=EntryKind.release,
        amount=amount,
        user_id=user_id,
        group_id=group_id,
        description=why,
    )
    deltas.add(cycle_id, account_id=account_id, group_id=group_id, user_id=user_id, held=-amount)


async def release_from_lease(
    session: AsyncSession, lease_id: uuid.UUID, amount: Decimal, why: str, deltas: Deltas
) -> Decimal | None:
    """Take ``amount`` out of a lease, as released held credits (in the caller's transaction; the
    running totals change through ``deltas``). Returns what the lease has left, or None when it is
    gone: it was swept (its process died) and released everything it held then.

    Never more than the lease holds: a call that cost more than its hold (an upstream that ignored
    the output limit) is debited at its real cost, but held credits never go below zero."""
    row = (
        await session.execute(
            select(
                CreditLease.amount,
                CreditLease.account_id,
                CreditLease.cycle_id,
                CreditLease.user_id,
                CreditLease.group_id,
            )
            .where(CreditLease.id == lease_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    held, account_id, cycle_id, user_id, group_id = row
    released = min(amount, max(Decimal(held), ZERO))
    if released != amount:
        log.warning(
            "lease %s released %s of %s credits: its calls cost more than they held",
            lease_id,
            released,
            amount,
        )
    left = Decimal(held) - released
    await session.execute(
        update(CreditLease).where(CreditLease.id == lease_id).values(amount=left),
        execution_options={"synchronize_session": False},
    )
    if released:
        await append_release(
            session, deltas, account_id=account_id, cycle_id=cycle_id, user_id=user_id, group_id=group_id,
            amount=released, why=why,
        )  # fmt: skip
    return left
