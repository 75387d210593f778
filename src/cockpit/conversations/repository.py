"""All SQL of conversations, scoped by account (and by owner for a person's own threads)."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.conversations.models import Conversation, ConversationMessage
from cockpit.kit.sql import LIKE_ESCAPE, contains_pattern
from cockpit.users.models import User


async def get_own(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    return await session.scalar(
        select(Conversation).where(
            Conversation.account_id == account_id,
            Conversation.user_id == user_id,
            Conversation.id == conversation_id,
        )
    )


async def get_own_with_owner(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> tuple[Conversation, User] | None:
    """The person's own conversation and the person, in one round trip."""
    row = (
        await session.execute(
            select(Conversation, User)
            .join(User, User.id == Conversation.user_id)
            .where(
                Conversation.account_id == account_id,
                Conversation.user_id == user_id,
                Conversation.id == conversation_id,
            )
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def own_stmt(
    account_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    search: str | None = None,
    archived: bool | None = False,
    deleted: bool = False,
) -> Select[Conversation]:
    """A person's conversations: pinned first, then the latest activity first."""
    stmt = select(Conversation).where(Conversation.account_id == account_id, Conversation.user_id == user_id)
    stmt = stmt.where(Conversation.deleted_at.is_not(None) if deleted else Conversation.deleted_at.is_(None))
    if archived is not None:
        stmt = stmt.where(Conversation.archived.is_(archived))
    if search:
        pattern = contains_pattern(search.lower())
        stmt = stmt.where(func.lower(Conversation.title).like(pattern, escape=LIKE_ESCAPE))
    return stmt.order_by(Conversation.pinned.desc(), Conversation.updated_at.desc(), Conversation.id)


async def get_message(
    session: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> ConversationMessage | None:
    return await session.scalar(
        select(ConversationMessage).where(
            ConversationMessage.conversation_id == conversation_id, ConversationMessage.id == message_id
        )
    )


async def messages_of(session: AsyncSession, conversation_id: uuid.UUID) -> list[ConversationMessage]:
    """Every message of the conversation, in one query, oldest first."""
    rows = await session.scalars(
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.created_at, ConversationMessage.id)
    )
    return list(rows)
