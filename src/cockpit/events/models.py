"""The ``platform_events`` table: each event once, written in the transaction that made it happen
(an outbox), then fanned out by the job queue."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin


class PlatformEvent(IdMixin, TimestampMixin, Base):
    __tablename__ = "platform_events"
    __table_args__ = (
        # An event that must happen once (a budget threshold per scope and cycle): a second emit of
        # the same key is a no-op, whoever makes it, however many at once.
        Index("ix_platform_events_account_dedupe", "account_id", "dedupe_key", unique=True),
        Index("ix_platform_events_account_created", "account_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))  # e.g. credit_request.created (events.catalog)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the template variables
    # The person concerned (the requester, the invitee) and the group whose admins hear of it.
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    # Who made it happen (NULL: the system).
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
