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

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, MicroDecimal, PicoDecimal, TimestampMixin
from cockpit.kit.time import utcnow


class Role(StrEnum):
    user = "user"
    assistant = "assistant"


class MessageStatus(StrEnum):
    complete = "complete"
    stopped = "stopped"  # the person stopped the stream: the content is what had arrived
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
    model: Mapped[str] = mapped_column(String(200), default="")  # the model that answered
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[Decimal] = mapped_column(PicoDecimal(), default=Decimal(0))
    credits: Mapped[Decimal] = mapped_column(MicroDecimal(), default=Decimal(0))
    # The tool calls of an agent's answer: integration, tool, arguments, result, duration.
    tool_steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
