"""All SQL of conversation files and artifacts, scoped by account (and by owner for the lists of a
person's artifacts across their conversations)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.conversations.models import (
    ArtifactKind,
    Conversation,
    ConversationArtifact,
    ConversationFile,
)

# ---- files ----


async def files_of(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[ConversationFile]:
    """A conversation's files, oldest first."""
    rows = await session.scalars(
        select(ConversationFile)
        .where(ConversationFile.account_id == account_id, ConversationFile.conversation_id == conversation_id)
        .order_by(ConversationFile.created_at, ConversationFile.id)
    )
    return list(rows)


async def get_file(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID, file_id: uuid.UUID
) -> ConversationFile | None:
    return await session.scalar(
        select(ConversationFile).where(
            ConversationFile.account_id == account_id,
            ConversationFile.conversation_id == conversation_id,
            ConversationFile.id == file_id,
        )
    )


async def files_by_ids(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> list[ConversationFile]:
    rows = await session.scalars(
        select(ConversationFile).where(
            ConversationFile.account_id == account_id,
            ConversationFile.conversation_id == conversation_id,
            ConversationFile.id.in_(list(ids)),
        )
    )
    return list(rows)


async def attached_files(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[ConversationFile]:
    """The files attached to a message of the conversation, oldest first (one query for a branch)."""
    rows = await session.scalars(
        select(ConversationFile)
        .where(
            ConversationFile.account_id == account_id,
            ConversationFile.conversation_id == conversation_id,
            ConversationFile.message_id.is_not(None),
        )
        .order_by(ConversationFile.created_at, ConversationFile.id)
    )
    return list(rows)


async def storage_keys_of(
    session: AsyncSession, conversation_ids: Collection[uuid.UUID]
) -> list[tuple[uuid.UUID, str]]:
    """(account id, storage key) of every file of these conversations (a purge, across accounts)."""
    rows = await session.execute(
        select(ConversationFile.account_id, ConversationFile.storage_key).where(
            ConversationFile.conversation_id.in_(list(conversation_ids))
        )
    )
    return [(row.account_id, row.storage_key) for row in rows]


async def used_bytes(session: AsyncSession, account_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(ConversationFile.size), 0)).where(
            ConversationFile.account_id == account_id
        )
    )
    return int(total or 0)


# ---- artifacts ----


def artifacts_stmt(
    account_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    conversation_id: uuid.UUID | None = None,
    kind: ArtifactKind | None = None,
) -> Select[ConversationArtifact]:
    """The latest version of each artifact of a person's conversations (not deleted ones), newest
    first."""
    stmt = (
        select(ConversationArtifact)
        .join(Conversation, Conversation.id == ConversationArtifact.conversation_id)
        .where(
            ConversationArtifact.account_id == account_id,
            ConversationArtifact.latest.is_(True),
            Conversation.account_id == account_id,
            Conversation.user_id == user_id,
            Conversation.deleted_at.is_(None),
        )
    )
    if conversation_id is not None:
        stmt = stmt.where(ConversationArtifact.conversation_id == conversation_id)
    if kind is not None:
        stmt = stmt.where(ConversationArtifact.kind == kind)
    return stmt.order_by(ConversationArtifact.created_at.desc(), ConversationArtifact.id.desc())


async def get_own_artifact(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, artifact_id: uuid.UUID
) -> ConversationArtifact | None:
    return await session.scalar(
        select(ConversationArtifact)
        .join(Conversation, Conversation.id == ConversationArtifact.conversation_id)
        .where(
            ConversationArtifact.account_id == account_id,
            ConversationArtifact.id == artifact_id,
            Conversation.account_id == account_id,
            Conversation.user_id == user_id,
            Conversation.deleted_at.is_(None),
        )
    )


async def versions_of(
    session: AsyncSession, account_id: uuid.UUID, lineage_id: uuid.UUID
) -> list[ConversationArtifact]:
    """Every version of one artifact, the latest first."""
    rows = await session.scalars(
        select(ConversationArtifact)
        .where(ConversationArtifact.account_id == account_id, ConversationArtifact.lineage_id == lineage_id)
        .order_by(ConversationArtifact.version.desc())
    )
    return list(rows)


async def latest_named(
    session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID, names: Collection[str]
) -> dict[str, ConversationArtifact]:
    """The latest version of each artifact of these names in the conversation, by name."""
    if not names:
        return {}
    rows = await session.scalars(
        select(ConversationArtifact).where(
            ConversationArtifact.account_id == account_id,
            ConversationArtifact.conversation_id == conversation_id,
            ConversationArtifact.latest.is_(True),
            ConversationArtifact.name.in_(list(names)),
        )
    )
    found: dict[str, ConversationArtifact] = {}
    for row in rows:
        if row.name not in found or row.created_at > found[row.name].created_at:
            found[row.name] = row
    return found


async def lineage_count(session: AsyncSession, account_id: uuid.UUID, conversation_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.count()).where(
            ConversationArtifact.account_id == account_id,
            ConversationArtifact.conversation_id == conversation_id,
            ConversationArtifact.latest.is_(True),
        )
    )
    return int(total or 0)


async def conversation_titles(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(Conversation.id, Conversation.title).where(
            Conversation.account_id == account_id,
            Conversation.user_id == user_id,
            Conversation.id.in_(list(ids)),
        )
    )
    return {row.id: row.title for row in rows}
