"""``lock_account`` remembers its locks per transaction: a lock asked for when the session has not
begun its next transaction yet is taken again (the one of the committed transaction is gone), and
the account returned is read in the new transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cockpit.kit.db import make_sessionmaker
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account, AuditChainHead
from tests.builders import make_account


async def test_a_lock_after_a_commit_is_taken_again(db: AsyncSession, db_engine: AsyncEngine) -> None:
    account, _owner = await make_account(db)
    account_id = account.id
    await db.commit()

    async with make_sessionmaker(db_engine)() as session:
        first = await lock_account(session, account_id)
        await session.commit()  # the lock is released; ``first`` is expired
        other = await db.get(Account, account_id, populate_existing=True)
        assert other is not None
        other.name = "Renamed meanwhile"
        await db.commit()

        again = await lock_account(session, account_id)  # no transaction had begun yet
        assert again.name == "Renamed meanwhile"  # read in this transaction, not the expired row
        assert again is first  # (the same identity, refreshed)
        if db_engine.dialect.name == "postgresql":
            # Held now: another transaction cannot take the account's lock row.
            async with make_sessionmaker(db_engine)() as rival:
                with pytest.raises(DBAPIError):
                    await rival.execute(
                        select(AuditChainHead)
                        .where(AuditChainHead.account_id == account_id)
                        .with_for_update(nowait=True)
                    )
        await session.commit()
