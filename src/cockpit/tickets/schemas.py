"""Support tickets over the API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from cockpit.kit.pagination import Page, PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.tickets.models import TicketAttachment, TicketCategory, TicketPriority, TicketStatus
from cockpit.tickets.repository import CommentRow, TicketRow
from cockpit.tickets.service import MAX_BODY, MAX_SUBJECT


class TicketCreate(InputSchema):
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT)
    description: str = Field(min_length=1, max_length=MAX_BODY)
    category: TicketCategory = TicketCategory.other
    priority: TicketPriority = TicketPriority.normal


class TicketUpdate(InputSchema):
    """Only the fields sent change; `assignee_id: null` unassigns."""

    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    category: TicketCategory | None = None
    assignee_id: uuid.UUID | None = None


class CommentCreate(InputSchema):
    body: str = Field(min_length=1, max_length=MAX_BODY)
    internal: bool = Field(default=False, description="An internal note: support administrators only")


class TicketMerge(InputSchema):
    into: uuid.UUID = Field(description="The ticket this one duplicates")


class PersonOut(OutputSchema):
    id: uuid.UUID
    name: str
    email: str


class CommentOut(OutputSchema):
    id: uuid.UUID
    author: PersonOut | None
    body: str
    internal: bool
    created_at: datetime

    @classmethod
    def of(cls, row: CommentRow) -> CommentOut:
        c, a = row.comment, row.author
        author = PersonOut(id=a.id, name=a.display_name, email=a.email) if a else None
        return cls(id=c.id, author=author, body=c.body, internal=c.internal, created_at=c.created_at)


class AttachmentOut(OutputSchema):
    id: uuid.UUID
    name: str
    media_type: str
    size: int
    uploader_id: uuid.UUID | None
    created_at: datetime


class TicketOut(OutputSchema):
    id: uuid.UUID
    number: int
    subject: str
    description: str
    category: TicketCategory
    priority: TicketPriority
    status: TicketStatus
    requester: PersonOut | None
    assignee: PersonOut | None
    merged_into_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    comments: list[CommentOut] | None = Field(
        default=None, description="The thread (one ticket only); members never see internal notes"
    )
    attachments: list[AttachmentOut] | None = Field(default=None, description="One ticket only")

    @classmethod
    def of(
        cls,
        row: TicketRow,
        comments: list[CommentRow] | None = None,
        attachments: list[TicketAttachment] | None = None,
    ) -> TicketOut:
        t, r, a = row.ticket, row.requester, row.assignee
        files = None if attachments is None else [AttachmentOut.model_validate(f) for f in attachments]
        return cls(
            id=t.id, number=t.number, subject=t.subject, description=t.description, category=t.category,
            priority=t.priority, status=t.status,
            requester=PersonOut(id=r.id, name=r.display_name, email=r.email) if r else None,
            assignee=PersonOut(id=a.id, name=a.display_name, email=a.email) if a else None,
            merged_into_id=t.merged_into_id, created_at=t.created_at, updated_at=t.updated_at,
            resolved_at=t.resolved_at, closed_at=t.closed_at,
            comments=None if comments is None else [CommentOut.of(c) for c in comments],
            attachments=files,
        )  # fmt: skip


class TicketList(OutputSchema):
    items: list[TicketOut]
    meta: PageMeta

    @classmethod
    def of(cls, page: Page[TicketRow]) -> TicketList:
        return cls(items=[TicketOut.of(row) for row in page.items], meta=PageMeta.of(page))
