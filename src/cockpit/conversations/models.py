"""Conversations: a person's threads with an agent or a bare model, and their messages as a tree.

Every message points at its parent; the messages that share a parent are alternatives (an edited
question, a regenerated answer), and one path from the root to a leaf is a branch.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Index, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, MicroDecimal, PicoDecimal, TimestampMixin
from cockpit.kit.time import utcnow


class Role(StrEnum):
    user = "user"
    assistant = "assistant"


class MessageStatus(StrEnum):
    complete = "complete"
    stopped = "stopped"  # the person stopped the stream: the content is what had arrived
    # An agent's run paused at a tool marked "ask before running": ``pending`` holds what resumes it.
    awaiting_approval = "awaiting_approval"
    error = "error"


def _enum(cls: type[StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, validate_strings=True)


class Conversation(IdMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    # The sidebar: a person's conversations, the latest activity first.
    __table_args__ = (Index("ix_conversations_account_user_updated", "account_id", "user_id", "updated_at"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # the owner
    # NULL: a bare-model conversation, or one whose agent was deleted (its messages stay).
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # The model's name (a bare-model conversation) or the agent's model when it was started.
    model: Mapped[str] = mapped_column(String(200), default="")
    # Empty until the person (or a suggestion from the first exchange) names it.
    title: Mapped[str] = mapped_column(String(200), default="")
    pinned: Mapped[bool] = mapped_column(default=False, server_default=false())
    archived: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Set by a delete: recoverable until purged (30 days later).
    deleted_at: Mapped[datetime | None]
    # The last message of the branch last added to or viewed (no foreign key: a message is only
    # ever deleted with its conversation).
    current_leaf_id: Mapped[uuid.UUID | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # the last activity


class ConversationMessage(IdMixin, TimestampMixin, Base):
    __tablename__ = "conversation_messages"
    # A conversation's messages are read at once, in the order they were written.
    __table_args__ = (
        Index("ix_conversation_messages_conversation_created", "conversation_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    # NULL: a first message. No ON DELETE CASCADE: SQLite runs a cascade as nested triggers, and a
    # branch of more than 1,000 messages would exceed its trigger depth; messages go only with their
    # conversation, all at once (checked at the end of the statement). Indexed, so that the check
    # does not scan the table.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("conversation_messages.id"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus), default=MessageStatus.complete)
    error: Mapped[str | None] = mapped_column(String(500))
    # The refusal's code (e.g. insufficient_credits, policy_denied): what the chat offers to do next.
    error_code: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200), default="")  # the model that answered
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[Decimal] = mapped_column(PicoDecimal(), default=Decimal(0))
    credits: Mapped[Decimal] = mapped_column(MicroDecimal(), default=Decimal(0))
    # The tool calls of an agent's answer: integration, tool, arguments, result, duration.
    tool_steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # A paused run (status awaiting_approval): the tool calls waiting for the person's decision and
    # the run's messages so far. Written by Cockpit only; cleared once decided.
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# ---- sharing and administrator review (conversations.sharing) ----


class ConversationShare(IdMixin, TimestampMixin, Base):
    """A conversation shared read-only with another person of the same account."""

    __tablename__ = "conversation_shares"
    __table_args__ = (
        # One share per person and conversation; also "the people it is shared with".
        Index("ix_conversation_shares_conversation_id_user_id", "conversation_id", "user_id", unique=True),
        # "Shared with me", the latest first.
        Index("ix_conversation_shares_user_id_created_at", "user_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # who may read
    # Who shared it (the owner); NULL once that person is deleted.
    shared_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ConversationReview(IdMixin, TimestampMixin, Base):
    """An administrator opened the conversation to review it (the owner sees each one)."""

    __tablename__ = "conversation_reviews"
    __table_args__ = (
        Index("ix_conversation_reviews_conversation_id_created_at", "conversation_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    # NULL once the reviewer is deleted (the review stays: "a deleted user").
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


# ---- files and artifacts ----


class ArtifactKind(StrEnum):
    code = "code"  # a fenced code block of an answer
    document = "document"  # an answer that is a whole Markdown document
    file = "file"  # a file a tool returned


class ConversationFile(IdMixin, TimestampMixin, Base):
    """A file the owner uploaded into a conversation: its bytes are in the file storage (under the
    data directory, by account and a random key: never the uploaded name), its text here."""

    __tablename__ = "conversation_files"
    __table_args__ = (Index("ix_conversation_files_conversation_created", "conversation_id", "created_at"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # the uploader
    # The message of the person it was attached to (NULL: uploaded, not sent yet).
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversation_messages.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))  # shown and offered on download, never a path
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    # What a model reads: the text of a text file or a PDF (capped); NULL for an image.
    text: Mapped[str | None] = mapped_column(Text)


class ConversationArtifact(IdMixin, TimestampMixin, Base):
    """Code, a document or a file that an answer produced. The versions of one artifact share a
    ``lineage_id`` (the first version's id); the last one is ``latest``."""

    __tablename__ = "conversation_artifacts"
    __table_args__ = (
        UniqueConstraint("lineage_id", "version"),
        Index("ix_conversation_artifacts_conversation_created", "conversation_id", "created_at"),
        Index("ix_conversation_artifacts_account_latest_created", "account_id", "latest", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    # The answer that produced it.
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversation_messages.id", ondelete="SET NULL"), index=True
    )
    lineage_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(default=1)
    latest: Mapped[bool] = mapped_column(default=True, server_default=true())
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[ArtifactKind] = mapped_column(_enum(ArtifactKind))
    media_type: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(50), default="")
    size: Mapped[int] = mapped_column(BigInteger)  # bytes of its UTF-8 content
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
