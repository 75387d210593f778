"""All SQL of the audit domain. Every query is scoped to one account."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.audit.queries import AuditFilters
from cockpit.kit.sql import LIKE_ESCAPE, contains_pattern
from cockpit.tenancy.models import AuditChainHead


def search_stmt(account_id: uuid.UUID, filters: AuditFilters) -> Select[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.account_id == account_id)
    if filters.q:
        pattern = contains_pattern(filters.q)
        stmt = stmt.where(
            or_(
                AuditEntry.action.ilike(pattern, escape=LIKE_ESCAPE),
                AuditEntry.actor_label.ilike(pattern, escape=LIKE_ESCAPE),
                AuditEntry.target_label.ilike(pattern, escape=LIKE_ESCAPE),
                AuditEntry.target_id.ilike(pattern, escape=LIKE_ESCAPE),
                AuditEntry.ip.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    if filters.action:
        stmt = stmt.where(AuditEntry.action == filters.action)
    if filters.actor_id:
        stmt = stmt.where(AuditEntry.actor_id == filters.actor_id)
    if filters.since:
        stmt = stmt.where(AuditEntry.created_at >= filters.since)
    if filters.until:
        stmt = stmt.where(AuditEntry.created_at < filters.until)
    return stmt.order_by(AuditEntry.seq.desc())


async def get_entry(session: AsyncSession, account_id: uuid.UUID, entry_id: uuid.UUID) -> AuditEntry | None:
    return await session.scalar(
        select(AuditEntry).where(AuditEntry.account_id == account_id, AuditEntry.id == entry_id)
    )


async def distinct_actions(session: AsyncSession, account_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(AuditEntry.action)
        .distinct()
        .where(AuditEntry.account_id == account_id)
        .order_by(AuditEntry.action)
    )
    return list(rows)


async def chain_head(session: AsyncSession, account_id: uuid.UUID) -> AuditChainHead | None:
    return await session.get(AuditChainHead, account_id, populate_existing=True)


async def stream_chain(session: AsyncSession, account_id: uuid.UUID) -> AsyncIterator[AuditEntry]:
    result = await session.stream_scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id)
        .order_by(AuditEntry.seq)
        .execution_options(yield_per=1000)
    )
    async for entry in result:
        yield entry


async def stream_filtered(
    session: AsyncSession, account_id: uuid.UUID, filters: AuditFilters
) -> AsyncIterator[AuditEntry]:
    result = await session.stream_scalars(search_stmt(account_id, filters).execution_options(yield_per=1000))
    async for entry in result:
        yield entry
