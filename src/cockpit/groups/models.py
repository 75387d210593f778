from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cockpit.kit.db import Base, IdMixin, TimestampMixin

DESCRIPTION_MAX = 500

DEFAULT_GROUP_NAME = "Default"


class Group(IdMixin, TimestampMixin, Base):
    """A set of users. Each account has one system group, Default, that cannot be renamed or deleted."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # Lower-cased name: "Sales" and "sales" are the same group.
    name_key: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX), default="")
    is_default: Mapped[bool] = mapped_column(default=False)
