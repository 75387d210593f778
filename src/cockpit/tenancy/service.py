"""Reading the tenant row: what code acting for a signed-in person or a job needs of their account."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.tenancy.models import Account


async def account_by_id(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """The account (as this session has it; ``lock.lock_account`` reads it fresh under the lock)."""
    return await session.get(Account, account_id)
