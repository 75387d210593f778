from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.authz.roles import UserRole
from cockpit.kit.db import Base, IdMixin, TimestampMixin

__all__ = [
    "User",
    "UserAvatar",
    "UserRole",
    "UserStatus",
]  # the role's home is authz.roles; many import it from here


class UserStatus(StrEnum):
    active = "active"
    deactivated = "deactivated"


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_account_id_group_id", "account_id", "group_id"),
        Index("ix_users_account_id_name", "account_id", "name"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # E-mail is the login name, so it is unique across the installation (stored lower-case).
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[UserRole] = mapped_column(
        Enum(UserRole, native_enum=False, length=20, validate_strings=True), default=UserRole.member
    )
    status: Mapped[UserStatus] = mapped_column(
        Enum(UserStatus, native_enum=False, length=20, validate_strings=True), default=UserStatus.active
    )
    password_hash: Mapped[str | None] = mapped_column(String(255))
    last_login_at: Mapped[datetime | None]
    deactivated_at: Mapped[datetime | None]
    # Every user is in exactly one group (the account's Default group unless moved).
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id", ondelete="RESTRICT"))
    # Seats held (they count against the account's limits only while the user is active).
    seat_copilot: Mapped[bool] = mapped_column(default=False, server_default=false())
    seat_console: Mapped[bool] = mapped_column(default=False, server_default=false())
    seat_compute: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The person's own preferences (issue 17); None means "as the organisation".
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(10))
    avatar_colour: Mapped[str | None] = mapped_column(String(20))
    # When the person's avatar picture (``UserAvatar``) was set; None: no picture, the initial shows.
    # Kept here so that every page can tell (and version the picture's URL) without loading it.
    avatar_updated_at: Mapped[datetime | None]
    # A change of the sign-in e-mail waiting for its confirmation (auth.email_change): the new
    # address, the SHA-256 of the one-time link's token and when the link stops working.
    pending_email: Mapped[str | None] = mapped_column(String(254))
    pending_email_token_hash: Mapped[str | None] = mapped_column(String(64))
    pending_email_expires_at: Mapped[datetime | None]

    @property
    def display_name(self) -> str:
        return self.name or self.email


class UserAvatar(Base):
    """The picture of a person's avatar (auth.profile_media): a checked PNG, JPEG or WebP image."""

    __tablename__ = "user_avatars"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    media_type: Mapped[str] = mapped_column(String(20))
    width: Mapped[int]
    height: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]
