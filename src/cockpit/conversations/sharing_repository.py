"""The SQL of sharing, review and retention (kept apart from ``repository`` so that the threads'
own queries stay small). Every query is scoped by account."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.conversations.models import (
    Conversation,
    ConversationMessage,
    ConversationReview,
    ConversationShare,
)
from cockpit.kit.sql import LIKE_ESCAPE, contains_pattern
from cockpit.tenancy.models import Account


async def get_in_account(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    return await session.scalar(
        select(Conversation).where(Conversation.account_id == account_id, Conversation.id == conversation_id)
    )


async def share_of(
    session: AsyncSession, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> ConversationShare | None:
    return await session.scalar(
        select(ConversationShare).where(
            ConversationShare.conversation_id == conversation_id, ConversationShare.user_id == user_id
        )
    )


async def shares_of(session: AsyncSession, conversation_id: uuid.UUID) -> list[ConversationShare]:
    rows = await session.scalars(
        select(ConversationShare)
        .where(ConversationShare.conversation_id == conversation_id)
        .order_by(ConversationShare.created_at, ConversationShare.id)
    )
    return list(rows)


def _titled(stmt: Select[Conversation], search: str | None) -> Select[Conversation]:
    if search:
        pattern = contains_pattern(search.lower())
        stmt = stmt.where(func.lower(Conversation.title).like(pattern, escape=LIKE_ESCAPE))
    return stmt


def shared_with_stmt(
    account_id: uuid.UUID, user_id: uuid.UUID, *, search: str | None
) -> Select[Conversation]:
    """The conversations shared with this person (not deleted), the latest activity first."""
    stmt = (
        select(Conversation)
        .join(ConversationShare, ConversationShare.conversation_id == Conversation.id)
        .where(
            ConversationShare.account_id == account_id,
            ConversationShare.user_id == user_id,
            Conversation.account_id == account_id,
            Conversation.deleted_at.is_(None),
        )
    )
    return _titled(stmt, search).order_by(Conversation.updated_at.desc(), Conversation.id)


def account_stmt(
    account_id: uuid.UUID, *, user_id: uuid.UUID | None, search: str | None
) -> Select[Conversation]:
    """The account's conversations (not deleted), for a reviewer: the latest activity first."""
    stmt = select(Conversation).where(
        Conversation.account_id == account_id, Conversation.deleted_at.is_(None)
    )
    if user_id is not None:
        stmt = stmt.where(Conversation.user_id == user_id)
    return _titled(stmt, search).order_by(Conversation.updated_at.desc(), Conversation.id)


def reviews_stmt(conversation_id: uuid.UUID) -> Select[ConversationReview]:
    return (
        select(ConversationReview)
        .where(ConversationReview.conversation_id == conversation_id)
        .order_by(ConversationReview.created_at.desc(), ConversationReview.id)
    )


# ---- retention ----


async def accounts_with_retention(session: AsyncSession) -> list[tuple[uuid.UUID, int]]:
    rows = await session.execute(
        select(Account.id, Account.conversation_retention_days)
        .where(Account.conversation_retention_days > 0)
        .order_by(Account.id)
    )
    return [(row[0], row[1]) for row in rows]


async def inactive_ids(
    session: AsyncSession, account_id: uuid.UUID, before: datetime, limit: int
) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Conversation.id)
        .where(
            Conversation.account_id == account_id,
            Conversation.deleted_at.is_(None),
            Conversation.updated_at < before,
        )
        .order_by(Conversation.updated_at, Conversation.id)
        .limit(limit)
    )
    return list(rows)


async def mark_deleted(
    session: AsyncSession, ids: Sequence[uuid.UUID], before: datetime, at: datetime
) -> int:
    """Soft-delete these conversations if they are still inactive and not deleted (checked again
    in the statement: a message sent since keeps its conversation)."""
    result = await session.execute(
        update(Conversation)
        .where(Conversation.id.in_(ids), Conversation.deleted_at.is_(None), Conversation.updated_at < before)
        .values(deleted_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def purgeable_ids(session: AsyncSession, before: datetime, limit: int) -> list[uuid.UUID]:
    """Conversations deleted before ``before``, locked (PostgreSQL: skipping those another purge
    holds, so that two workers share the work instead of waiting for each other)."""
    rows = await session.scalars(
        select(Conversation.id)
        .where(Conversation.deleted_at.is_not(None), Conversation.deleted_at < before)
        .order_by(Conversation.deleted_at, Conversation.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def purge(session: AsyncSession, ids: Sequence[uuid.UUID]) -> int:
    """Delete these conversations with everything that hangs on them. The messages go in one
    statement (their parent links are checked at its end: no cascade along the tree), before their
    conversations; shares and reviews explicitly too (not relying on SQLite's foreign-key pragma)."""
    if not ids:
        return 0
    await session.execute(delete(ConversationShare).where(ConversationShare.conversation_id.in_(ids)))
    await session.execute(delete(ConversationReview).where(ConversationReview.conversation_id.in_(ids)))
    await session.execute(
        delete(ConversationMessage)
        .where(ConversationMessage.conversation_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        delete(Conversation).where(Conversation.id.in_(ids)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
