"""All SQL of the audit domain. Every query is scoped to one account."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.models import Account
from cockpit.audit.models import AuditChainHead, AuditEntry
from cockpit.kit.sql import LIKE_ESCAPE, contains_pattern


@dataclass(frozen=True)
class AuditFilters:
    q: str | None = None
    action: str | None = None
    actor_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


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


async def lock_chain_head(session: AsyncSession, account_id: uuid.UUID) -> AuditChainHead:
    """Lock the account's chain head row (``FOR UPDATE``) and read it fresh; created on first use.

    Nothing the caller has pending is flushed first: the head lock must be the first lock its
    transaction takes on the account's rows (see ``service.lock_account``). A missing row (an account
    created since the migration) is inserted, unless the account does not exist: LookupError.
    """
    stmt = (
        select(AuditChainHead)
        .where(AuditChainHead.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    with session.no_autoflush:
        head = await session.scalar(stmt)
    if head is None:
        # A new account: nobody else can be waiting on its rows yet, so flushing first is harmless
        # (and the account row itself may still be pending).
        await session.flush()
        upsert = _insert(session).from_select(
            ["account_id", "seq", "head"],
            select(Account.id, literal(0), literal("")).where(Account.id == account_id),
        )
        await session.execute(upsert.on_conflict_do_nothing(index_elements=["account_id"]))
        head = await session.scalar(stmt)
    if head is None:
        raise LookupError(f"account {account_id} does not exist")
    return head


def _insert(session: AsyncSession) -> Any:
    """INSERT with ON CONFLICT for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert(AuditChainHead)
    return sqlite_insert(AuditChainHead)


async def fresh_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """The account row as committed now (what the session may have loaded before is refreshed)."""
    return await session.scalar(
        select(Account).where(Account.id == account_id).execution_options(populate_existing=True)
    )


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
