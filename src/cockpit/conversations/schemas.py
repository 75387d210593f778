"""Request and response bodies of the conversations API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from cockpit.conversations.models import Conversation, ConversationMessage
from cockpit.kit.money import plain
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema

TITLE_MAX = 200
CONTENT_MAX = 100_000
ERROR_MAX = 500


class ConversationCreate(InputSchema):
    """Exactly one of ``agent`` (its slug) and ``model`` (a catalogue model's name)."""

    agent: str | None = Field(default=None, min_length=1, max_length=100)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    title: str | None = Field(default=None, max_length=TITLE_MAX)

    @model_validator(mode="after")
    def _one_of(self) -> ConversationCreate:
        if (self.agent is None) == (self.model is None):
            raise ValueError("give either an agent (its slug) or a model (its name), not both")
        return self


class ConversationUpdate(InputSchema):
    """A PATCH: only the fields sent change. ``current_leaf_id`` switches the branch it reopens on
    (any message of the conversation: the branch runs on to that message's latest reply)."""

    title: str | None = Field(default=None, max_length=TITLE_MAX)
    pinned: bool | None = None
    archived: bool | None = None
    current_leaf_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ConversationUpdate:
        for field in self.model_fields_set:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class ConversationOut(BaseModel):
    id: uuid.UUID
    agent_id: uuid.UUID | None
    agent: str | None = Field(description="The agent's name (null: a bare model, or a deleted agent)")
    model: str
    title: str = Field(description="Empty until named")
    pinned: bool
    archived: bool
    deleted_at: datetime | None
    current_leaf_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime = Field(description="The last activity")
    access: str = Field(
        default="owner",
        description='Why the caller may read it: "owner", "shared" (read-only) or "review" (an admin)',
    )


def conversation_out(
    conversation: Conversation, agent_names: dict[str, str], access: str = "owner"
) -> ConversationOut:
    agent_id = conversation.agent_id
    return ConversationOut(
        id=conversation.id,
        agent_id=agent_id,
        agent=agent_names.get(str(agent_id)) if agent_id else None,
        model=conversation.model,
        title=conversation.title,
        pinned=conversation.pinned,
        archived=conversation.archived,
        deleted_at=conversation.deleted_at,
        current_leaf_id=conversation.current_leaf_id,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        access=access,
    )


class ConversationList(BaseModel):
    items: list[ConversationOut]
    meta: PageMeta


class MessageOut(BaseModel):
    id: uuid.UUID
    parent_id: uuid.UUID | None
    role: str
    content: str
    status: str
    error: str | None
    error_code: str | None = Field(
        None, description="Why an answer was refused (e.g. insufficient_credits, policy_denied)"
    )
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: str = Field(description='Exact decimal in USD, as a string (e.g. "0.0000675")')
    credits: str = Field(description="Exact decimal, as a string")
    tool_steps: list[dict[str, Any]]
    approval: list[dict[str, Any]] | None = Field(
        None,
        description="Status awaiting_approval: the tool calls waiting for the person's decision "
        "(call_id, integration, tool, arguments)",
    )
    created_at: datetime
    sibling_ids: list[uuid.UUID] = Field(
        description="The ids of the messages that share its parent (itself included), oldest first"
    )
    sibling_index: int = Field(description="Its place among them, from 0 (for a '2 of 3' control)")


class MessageList(BaseModel):
    conversation_id: uuid.UUID
    current_leaf_id: uuid.UUID | None
    items: list[MessageOut]


@dataclass(frozen=True)
class MessageView:
    """A message with the alternatives beside it: the messages that share its parent."""

    message: ConversationMessage
    sibling_ids: list[uuid.UUID]
    sibling_index: int


def approval_of(message: ConversationMessage) -> list[dict[str, Any]] | None:
    """What a paused answer asks the person to approve (None when it is not paused)."""
    pending = message.pending if str(message.status) == "awaiting_approval" else None
    asks = pending.get("asks") if isinstance(pending, dict) else None
    return [a for a in asks if isinstance(a, dict)] if isinstance(asks, list) else None


def message_out(view: MessageView) -> MessageOut:
    m = view.message
    return MessageOut(
        id=m.id,
        parent_id=m.parent_id,
        role=str(m.role),
        content=m.content,
        status=str(m.status),
        error=m.error,
        error_code=m.error_code,
        model=m.model,
        input_tokens=m.input_tokens,
        output_tokens=m.output_tokens,
        cost_usd=plain(m.cost_usd),
        credits=plain(m.credits),
        tool_steps=list(m.tool_steps or []),
        approval=approval_of(m),
        created_at=m.created_at,
        sibling_ids=view.sibling_ids,
        sibling_index=view.sibling_index,
    )
