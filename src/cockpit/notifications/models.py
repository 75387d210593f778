"""The tables of notifications: each account's templates (a missing row is the catalogue's default),
the in-app notifications of each person (the bell), and each person's mutes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin
from cockpit.kit.time import utcnow


class Channel(StrEnum):
    in_app = "in_app"
    email = "email"


class NotificationTemplate(IdMixin, TimestampMixin, Base):
    """An account's own version of one event's template on one channel."""

    __tablename__ = "notification_templates"
    __table_args__ = (UniqueConstraint("account_id", "event", "channel"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(100))  # events.catalog name
    channel: Mapped[Channel] = mapped_column(
        Enum(Channel, native_enum=False, length=20, validate_strings=True)
    )
    subject: Mapped[str] = mapped_column(String(1000), default="")  # Jinja2 source (sandboxed)
    body: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    # "person", "group_admins", "account_admins" (events.catalog.RECIPIENTS)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    addresses: Mapped[list[str]] = mapped_column(JSON, default=list)  # more e-mail addresses
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(IdMixin, TimestampMixin, Base):
    """One in-app notification of one person."""

    __tablename__ = "notifications"
    __table_args__ = (
        # The bell's unread count and the person's list: one index range each.
        Index("ix_notifications_user_read_created", "user_id", "read_at", "created_at"),
        # A fan-out that runs twice writes each person's notification of an event once.
        UniqueConstraint("event_id", "user_id"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("platform_events.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500))
    read_at: Mapped[datetime | None]


class NotificationMute(IdMixin, TimestampMixin, Base):
    """A person does not want to hear about one event (any channel); mandatory events ignore it."""

    __tablename__ = "notification_mutes"
    __table_args__ = (UniqueConstraint("account_id", "user_id", "event"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(100))


__all__ = ["Channel", "Notification", "NotificationMute", "NotificationTemplate"]
