"""The analytics tests' calls: generated rows of one account (and a copy in another account)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.usage.models import UsageRecord
from tests.analytics.data import Calls, make_calls
from tests.builders import make_account


@pytest.fixture
async def calls(db: AsyncSession) -> Calls:
    account, _ = await make_account(db)
    other, _ = await make_account(db, name="Other")
    made = make_calls(account.id)
    await db.execute(insert(UsageRecord), made.rows)
    # Another account's calls at the same moments: never counted.
    await db.execute(
        insert(UsageRecord), [{**r, "id": uuid.uuid4(), "account_id": other.id} for r in made.rows]
    )
    await db.commit()
    return made
