"""The tables of support tickets: the tickets, and their comments (public replies and internal notes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin
from cockpit.kit.time import utcnow


class TicketCategory(StrEnum):
    access = "access"
    credits = "credits"
    billing = "billing"
    bug = "bug"
    other = "other"


class TicketPriority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class TicketStatus(StrEnum):
    new = "new"  # filed, nobody has answered yet
    open = "open"  # being handled
    waiting = "waiting"  # waiting on the requester
    resolved = "resolved"
    closed = "closed"


def _enum(kind: type[StrEnum]) -> Enum:
    return Enum(kind, native_enum=False, length=20, validate_strings=True)


class SupportTicket(IdMixin, TimestampMixin, Base):
    """A member's request for help. ``number`` counts the account's tickets (1, 2, 3 ...)."""

    __tablename__ = "support_tickets"
    __table_args__ = (
        UniqueConstraint("account_id", "number"),
        Index("ix_support_tickets_account_status_created", "account_id", "status", "created_at"),
        Index("ix_support_tickets_account_requester_created", "account_id", "requester_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    number: Mapped[int]
    requester_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[TicketCategory] = mapped_column(_enum(TicketCategory), default=TicketCategory.other)
    priority: Mapped[TicketPriority] = mapped_column(_enum(TicketPriority), default=TicketPriority.normal)
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.new)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class TicketComment(IdMixin, TimestampMixin, Base):
    """A reply on a ticket; an ``internal`` note is for administrators only."""

    __tablename__ = "ticket_comments"
    __table_args__ = (Index("ix_ticket_comments_ticket_created", "ticket_id", "created_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("support_tickets.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(default=False)


class TicketAttachment(IdMixin, TimestampMixin, Base):
    """A file attached to a ticket (text, PDF or an image). Its bytes are stored on disk under
    ``<data_dir>/tickets/<account>/<key>``; the key is random, never a name someone sent."""

    __tablename__ = "ticket_attachments"
    __table_args__ = (Index("ix_ticket_attachments_ticket_created", "ticket_id", "created_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("support_tickets.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    uploader_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    storage_key: Mapped[str] = mapped_column(String(64))
