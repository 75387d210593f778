"""The tenant row: a new account, and the account as code acting for someone (or a job) reads it.

The row also keeps each domain's settings of the account (the profile, seat limits, credit settings,
gateway content settings): the domain that owns a setting changes it, under the account lock.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.tenancy.models import Account


async def add_account(session: AsyncSession, *, name: str, timezone: str) -> Account:
    """A new account, written at once (its first rows follow: ``accounts.create_account``)."""
    account = Account(id=uuid.uuid4(), name=name, timezone=timezone)
    session.add(account)
    await session.flush()
    return account


async def account_by_id(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """The account (as this session has it; ``lock.lock_account`` reads it fresh under the lock)."""
    return await session.get(Account, account_id)
