from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.authz.roles import UserRole
from cockpit.kit.db import Base, IdMixin, TimestampMixin


class Invitation(IdMixin, TimestampMixin, Base):
    """A pending seat for someone who has not set a password yet. The link's secret is stored hashed."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_account_id_email", "account_id", "email"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[UserRole] = mapped_column(
        Enum(UserRole, native_enum=False, length=20, validate_strings=True)
    )
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    # Seats the invitee will hold; counted as reserved while the invitation is pending.
    seat_copilot: Mapped[bool] = mapped_column(default=False)
    seat_console: Mapped[bool] = mapped_column(default=False)
    seat_compute: Mapped[bool] = mapped_column(default=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    sent_count: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    accepted_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None]

    @property
    def seats(self) -> list[str]:
        return [p for p in ("copilot", "console", "compute") if getattr(self, f"seat_{p}")]
