"""Reading the platform events an account recorded."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.events.models import PlatformEvent


async def events_of(db: AsyncSession, account_id: uuid.UUID, name: str | None = None) -> list[PlatformEvent]:
    """The account's events (of one name), oldest first, read afresh."""
    await db.rollback()
    stmt = select(PlatformEvent).where(PlatformEvent.account_id == account_id)
    if name is not None:
        stmt = stmt.where(PlatformEvent.name == name)
    rows = await db.scalars(
        stmt.order_by(PlatformEvent.created_at, PlatformEvent.id).execution_options(populate_existing=True)
    )
    return list(rows.all())


async def names_of(db: AsyncSession, account_id: uuid.UUID) -> list[str]:
    return [event.name for event in await events_of(db, account_id)]
