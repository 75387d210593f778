"""Request and response bodies of sharing, review, fork and export (api/conversation_sharing.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from cockpit.conversations.schemas import ConversationOut
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema


class ForkIn(InputSchema):
    message_id: uuid.UUID = Field(
        description="The last message copied: the branch from the first message to it"
    )


class ShareIn(InputSchema):
    user_id: uuid.UUID = Field(description="An active person of the same account (not the owner)")


class ShareOut(BaseModel):
    user_id: uuid.UUID
    user: str = Field(description="Their name (or e-mail)")
    email: str
    shared_by: uuid.UUID | None
    created_at: datetime


class ShareList(BaseModel):
    items: list[ShareOut]


class OthersConversationOut(ConversationOut):
    """Someone else's conversation (shared with the caller, or listed for review): with its owner."""

    owner_id: uuid.UUID
    owner: str = Field(description="The owner's name (or e-mail); 'deleted user' when gone")


class OthersConversationList(BaseModel):
    items: list[OthersConversationOut]
    meta: PageMeta


class ReviewOut(BaseModel):
    reviewer_id: uuid.UUID | None
    reviewer: str = Field(description="The reviewer's name (or e-mail); 'deleted user' when gone")
    created_at: datetime


class ReviewList(BaseModel):
    items: list[ReviewOut]
    meta: PageMeta
